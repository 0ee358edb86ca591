"""Lindero's services: ingest, correlator and alerts, plus what they share in ``core``."""
