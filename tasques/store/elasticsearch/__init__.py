"""The Elasticsearch store: stateless servers sharing one cluster."""
