"""The admission edge: AdmissionReview shapes, the ASGI app, the TLS server."""
