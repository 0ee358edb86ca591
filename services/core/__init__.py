"""What every service shares: configuration, Kafka clients, auth, geometry, logging.

No service imports another service; they meet only here and on the wire (``schemas``).
"""
