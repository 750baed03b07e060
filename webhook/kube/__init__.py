"""Kubernetes plumbing: the API client, list-and-watch, leader election."""
