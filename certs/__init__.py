"""Certificates for the admission webhook: CA, serving certificate, rotation, caBundle."""
