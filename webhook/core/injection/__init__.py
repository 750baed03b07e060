"""Injection: which pods are validators, and what they get (the webhook's patch, the policy)."""
