"""Tests of the alerts service's pure core."""
