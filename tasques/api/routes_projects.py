"""/projects: projects and their tokens (admin only). Every call writes one audit line."""

from __future__ import annotations

from aiohttp import web
from pydantic import TypeAdapter

from tasques.api.access import audit
from tasques.api.access_control import principal, requires
from tasques.api.http import check_name, json_model, read_body
from tasques.api.keys import AUTHENTICATOR, PROJECTS
from tasques.api.schemas_projects import (
    IssuedTokenBody,
    NewProject,
    NewToken,
    ProjectInfo,
    ProjectList,
    ProjectUpdate,
    TokenInfo,
    TokenList,
)
from tasques.domain.errors import FieldProblem, InvalidInput
from tasques.domain.limits import ProjectName
from tasques.domain.project import Role

routes = web.RouteTableDef()
PROJECT_NAME: TypeAdapter[str] = TypeAdapter(ProjectName)
# Token ids are url-safe base64 without '_' (16 characters as issued); bounded whatever is sent.
MAX_TOKEN_ID = 64


def _project(request: web.Request) -> str:
    return check_name(request.match_info["project"], PROJECT_NAME, "project")


def _audit(request: web.Request, action: str, project: str, token_id: str | None = None) -> None:
    audit.admin_action(action, project=project, actor=principal(request).actor, token_id=token_id)


@routes.post("/projects")
@requires(Role.ADMIN)
async def create_project(request: web.Request) -> web.Response:
    body = await read_body(request, NewProject)
    created = await request.app[PROJECTS].create(
        body.name, body.max_outstanding_tasks, unlimited=body.unlimited, rate_per_second=body.rate_per_second
    )
    _audit(request, "project.create", created.name)
    return json_model(ProjectInfo.of(created), status=201)


@routes.get("/projects")
@requires(Role.ADMIN)
async def list_projects(request: web.Request) -> web.Response:
    return json_model(ProjectList(projects=[ProjectInfo.of(p) for p in await request.app[PROJECTS].list_all()]))


@routes.get("/projects/{project}")
@requires(Role.ADMIN)
async def get_project(request: web.Request) -> web.Response:
    service = request.app[PROJECTS]
    project = await service.get(_project(request))
    return json_model(ProjectInfo.of(project, await service.outstanding(project.name)))


@routes.put("/projects/{project}")
@requires(Role.ADMIN)
async def update_project(request: web.Request) -> web.Response:
    name = _project(request)
    body = await read_body(request, ProjectUpdate)
    updated = await request.app[PROJECTS].update(name, **body.model_dump(include=body.model_fields_set))
    _audit(request, "project.update", name)
    return json_model(ProjectInfo.of(updated))


@routes.post("/projects/{project}/tokens")
@requires(Role.ADMIN)
async def issue_token(request: web.Request) -> web.Response:
    name = _project(request)
    body = await read_body(request, NewToken)
    service = request.app[PROJECTS]
    expires_at = service.now() + body.expires_in if body.expires_in is not None else None
    issued = await service.issue(
        name, body.role, name=body.name, expires_at=expires_at, allowed_networks=body.allowed_networks
    )
    _audit(request, "token.issue", name, issued.token.id)
    info = TokenInfo.of(issued.token)
    return json_model(IssuedTokenBody(**info.model_dump(), token=issued.text), status=201)


@routes.get("/projects/{project}/tokens")
@requires(Role.ADMIN)
async def list_tokens(request: web.Request) -> web.Response:
    tokens = await request.app[PROJECTS].tokens(_project(request))
    return json_model(TokenList(tokens=[TokenInfo.of(t) for t in tokens]))


@routes.delete("/projects/{project}/tokens/{token_id}")
@requires(Role.ADMIN)
async def revoke_token(request: web.Request) -> web.Response:
    name = _project(request)
    token_id = request.match_info["token_id"]
    if not 1 <= len(token_id) <= MAX_TOKEN_ID or not token_id.replace("-", "").isalnum():
        problem = f"1 to {MAX_TOKEN_ID} letters, digits or '-'"
        raise InvalidInput("invalid token id", [FieldProblem("token_id", problem)])
    revoked = await request.app[PROJECTS].revoke(name, token_id)
    request.app[AUTHENTICATOR].forget_token(token_id)  # here at once; elsewhere within auth.token_cache_ttl
    _audit(request, "token.revoke", name, token_id)
    return json_model(TokenInfo.of(revoked))
