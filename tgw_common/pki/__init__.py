"""Certificates: the demo PKI, the trust store (paths and CRLs) and small helpers."""
