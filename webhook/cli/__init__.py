"""The command line: `stellar-peers serve|inject|explain|check|certs`."""
