"""Typed application keys: the dependencies routes use, set once by the app factory."""

from __future__ import annotations

from aiohttp import web

from tasques.api.access import Authenticator
from tasques.service.batches import BatchService
from tasques.service.health import Readiness
from tasques.service.overview import OverviewService
from tasques.service.projects import ProjectService
from tasques.service.recurring import RecurringService
from tasques.service.tasks import TaskService
from tasques.service.workers import WorkerRegistry

TASKS = web.AppKey("tasks", TaskService)
RECURRING = web.AppKey("recurring", RecurringService)
STORE_KIND = web.AppKey("store_kind", str)
READINESS = web.AppKey("readiness", Readiness)
PROJECTS = web.AppKey("projects", ProjectService)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
WORKERS = web.AppKey("workers", WorkerRegistry)
BATCHES = web.AppKey("batches", BatchService)
OVERVIEW = web.AppKey("overview", OverviewService)
