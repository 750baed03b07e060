"""The peer set: what a peer is, its network, where it is advertised, and linked clusters' peers."""
