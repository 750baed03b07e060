"""Long-running controllers: the peer watcher, the ConfigMap publisher, the reload controller."""
