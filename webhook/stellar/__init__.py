"""The adapter to stellar-core's admin port: one way to ask a node, over HTTP or pods/exec."""
