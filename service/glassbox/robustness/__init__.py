"""Robustness checks: adversarial attacks, common corruptions, minimal-ε search, the report, and the
monitoring that evaluates models on a schedule and keeps their history (see docs/monitoring.md)."""
