"""Pure decisions over plain dicts: no I/O, no Kubernetes client, no web framework."""
