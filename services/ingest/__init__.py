"""The ingest service: gateways post sensor events over HTTP; validated, they land in Kafka."""
