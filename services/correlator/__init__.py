"""The correlator: fuses sensor events into tracks and raises anomalies, exactly once."""
