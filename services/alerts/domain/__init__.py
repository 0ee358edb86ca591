"""The alerts service's pure core: lifecycle state machine, team choice, sharing policy."""
