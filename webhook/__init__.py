"""stellar-peer-injector: peer discovery for Stellar validators on Kubernetes."""

__version__ = "0.1.0"
