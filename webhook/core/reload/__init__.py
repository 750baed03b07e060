"""Reload plans: which running validators to tell of new peers, how, and whether they connected."""
