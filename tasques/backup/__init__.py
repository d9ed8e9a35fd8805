"""Backups of the SQLite store (online copies to a directory or S3-compatible object storage) and their
restore; Elasticsearch snapshots. See README.md here."""
