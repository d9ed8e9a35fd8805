"""The Elasticsearch store: stateless servers sharing one cluster."""

from tasques.store.elasticsearch.store import ElasticsearchStore

__all__ = ["ElasticsearchStore"]
