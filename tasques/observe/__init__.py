"""Observability: Prometheus metrics, Elastic APM traces and structured logs, fed by the services' events."""
