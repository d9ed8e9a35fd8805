"""The Elasticsearch store: any number of stateless servers sharing one cluster.

Layout, versioning, claims, refreshes and the archive are described in README.md next to this file. In short:
one live index `{prefix}-tasks` (`_id` = `{project}/{queue}/{id}`), conditional writes on `_seq_no`/`_primary_term`
(never scripts), claims as one search plus conditional `_bulk` writes that skip lost races, and a coalesced
refresh before every search so each instance reads its own writes.

This module only puts `ElasticsearchStore` together; each concern is a mixin in its own module (`tasks`,
`quota`, `listing`, `modify`, `claims`, `probe`, `queue_ops`, `archiving`, `records`, `admin`, `batches`,
`timeline`, `lock`, `workers`) on the
shared `core.StoreCore`, with the document helpers in `documents`.
The names other code imports from here are re-exported.
"""

from __future__ import annotations

from datetime import timedelta

from tasques.store.elasticsearch.admin import AdminMixin
from tasques.store.elasticsearch.archiving import ArchivingMixin
from tasques.store.elasticsearch.batches import BatchesMixin
from tasques.store.elasticsearch.claims import CLAIM_ROUNDS, EMPTY_CLAIM_REFRESH_GAP, MAX_STALE_EXCLUDED, ClaimsMixin
from tasques.store.elasticsearch.core import (
    ARCHIVE_MAINTENANCE_EVERY,
    MAX_PAGE,
    StoreCore,
    build_client,
)
from tasques.store.elasticsearch.dependencies import DependenciesMixin
from tasques.store.elasticsearch.documents import ElasticsearchStoreError, es_date
from tasques.store.elasticsearch.faults import translate_faults
from tasques.store.elasticsearch.listing import ListingMixin
from tasques.store.elasticsearch.lock import LockMixin
from tasques.store.elasticsearch.modify import ModifyMixin
from tasques.store.elasticsearch.probe import ProbeMixin
from tasques.store.elasticsearch.queue_ops import QueueOpsMixin
from tasques.store.elasticsearch.tasks import TasksMixin
from tasques.store.elasticsearch.timeline import TimelineMixin
from tasques.store.elasticsearch.workers import WorkersMixin
from tasques.store.unreadable import MAX_UNREADABLE

__all__ = [
    "ARCHIVE_MAINTENANCE_EVERY",
    "CLAIM_ROUNDS",
    "EMPTY_CLAIM_REFRESH_GAP",
    "MAX_PAGE",
    "MAX_STALE_EXCLUDED",
    "MAX_UNREADABLE",
    "ElasticsearchStore",
    "ElasticsearchStoreError",
    "build_client",
    "es_date",
]


@translate_faults
class ElasticsearchStore(
    TasksMixin,
    ListingMixin,
    ModifyMixin,
    ClaimsMixin,
    ProbeMixin,
    QueueOpsMixin,
    ArchivingMixin,
    AdminMixin,
    BatchesMixin,
    TimelineMixin,
    LockMixin,
    WorkersMixin,
    DependenciesMixin,
    StoreCore,
):
    """`Store` on Elasticsearch (see `tasques.store.base` for the contract, README.md for the design)."""

    kind: str = "elasticsearch"

    @property
    def search_delay(self) -> timedelta:
        return self._settings.refresh_interval
