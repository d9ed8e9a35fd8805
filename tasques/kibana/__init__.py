"""Kibana saved objects for Tasques' Elasticsearch indices, and the `tasques kibana` command that imports them.

The objects are kibana/tasques.ndjson (packaged here as `tasques.ndjson`, a link to it). This package talks to
Kibana over HTTP only: it imports nothing of the API, the services or the stores.
"""
