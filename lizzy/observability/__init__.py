"""Observability: JSON logs with request ids and redaction, Prometheus metrics, health checks, alarms."""
