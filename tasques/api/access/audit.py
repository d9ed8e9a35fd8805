"""The audit trail: one structured line per authentication failure and per admin action, on the logger
`tasques.audit` (route it with logging configuration like any other logger).

Fields go in `extra=` with ECS names (the JSON log format nests them); the text message repeats them for the
text format. Nothing here ever receives a secret, a token string or an Authorization header: callers pass
the token *id* only, and `reason` is one of the fixed phrases of `tasques.api.access.authenticator`.
"""

from __future__ import annotations

import logging

log = logging.getLogger("tasques.audit")

REASON = "event.reason"
TOKEN_ID = "tasques.token.id"
PROJECT = "tasques.project"
PEER = "source.ip"
PATH = "url.path"
ACTOR = "user.name"
ACTION = "event.action"
OUTCOME = "event.outcome"
CATEGORY = "event.category"
_MAX_TEXT = 200  # of a client-supplied path in a line


def auth_failure(reason: str, *, token_id: str | None = None, peer: str | None = None, path: str = "") -> None:
    fields = {
        CATEGORY: "authentication",
        ACTION: "authenticate",
        OUTCOME: "failure",
        REASON: reason,
        PEER: peer or "",
        PATH: path[:_MAX_TEXT],
    }
    if token_id is not None:
        fields[TOKEN_ID] = token_id
    log.warning(
        "authentication failed: %s (token %s, peer %s, path %r)",
        reason,
        token_id or "-",
        peer or "-",
        path[:_MAX_TEXT],
        extra=fields,
    )


def admin_action(action: str, *, project: str, actor: str, token_id: str | None = None) -> None:
    """An admin change (`project.create`, `token.create`, `token.revoke`, ...): who did what, where.
    `token_id` is the token acted on, if any; `actor` is `Principal.actor` of the caller."""
    fields = {CATEGORY: "configuration", ACTION: action, OUTCOME: "success", PROJECT: project, ACTOR: actor}
    if token_id is not None:
        fields[TOKEN_ID] = token_id
    log.info("admin %s: project %s, token %s, by %s", action, project, token_id or "-", actor, extra=fields)
