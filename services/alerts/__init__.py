"""The alerts service: live feeds, the alert lifecycle, dispatch to teams, sharing agreements."""
