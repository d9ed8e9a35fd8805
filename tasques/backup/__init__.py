"""Backups of the SQLite store (online copies to a directory or S3-compatible object storage) and their
restore; Elasticsearch snapshots. See README.md here."""

from tasques.backup.factory import destination_for

__all__ = ["destination_for"]
