"""Publishing: the watcher's fold, and the `stellar-peers` ConfigMaps rendered from it."""
