"""Tasques: a durable task server with a REST API, on SQLite or Elasticsearch."""

__version__ = "0.1.0"
