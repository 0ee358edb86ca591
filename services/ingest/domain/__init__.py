"""Ingest's pure logic: parsing, admission, rate limiting, duplicate detection. No I/O, no clock."""
