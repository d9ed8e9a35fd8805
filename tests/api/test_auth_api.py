"""Auth on the API: every role against every route (from the roles the routes declare), no route reachable
without credentials but /health, /ready and the dashboard's static files, and each way of presenting credentials: tokens, JWTs, the Go
client's basic auth, the admin token; expiry, tampering, revocation, networks and rate limits."""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import timedelta
from pathlib import Path

import jwt as pyjwt
import pytest
from aiohttp import web

from tasques.api.route_tables import route_roles
from tasques.domain.project import Role, may
from tests.api.auth_helpers import (
    ADMIN,
    ADMIN_HEADERS,
    JWT_SECRET,
    auth_client,
    auth_overrides,
    bearer,
    issue,
    new_project,
)
from tests.api.conftest import T0, Client, MakeClient, assert_error, basic_auth, call

OPEN = {"/health", "/ready", "/ui", "/ui/", "/ui/index.html"}
CONCRETE = {
    "{queue}": "q", "{id}": "t", "{project}": "alpha", "{token_id}": "AAAAAAAAAAAAAAAA", "{path}": "index.html",
}  # fmt: skip


def _concrete(path: str) -> str:
    for name, value in CONCRETE.items():
        path = path.replace(name, value)
    return path


async def _status(client: Client, method: str, path: str, headers: dict[str, str]) -> int:
    # Worker routes need the worker header; bodies are empty objects (a 400 is fine: the route was reached).
    sent = {**headers, "X-TASQUES-WORKER-ID": "w"}
    async with client.request(method.upper(), path, json={}, headers=sent) as resp:
        await resp.read()
        return resp.status


async def test_every_role_against_every_route(make_client: MakeClient) -> None:
    client = await auth_client(make_client, rate_per_second=100_000.0, burst=100_000)
    await new_project(client, "alpha")
    tokens = {role: await issue(client, "alpha", role) for role in Role}
    table = route_roles()
    # The table covers every route the app serves but the docs, whose role (viewer) is checked below.
    served = {
        (r.method.lower(), r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource is not None and r.method != "HEAD" and not isinstance(r.resource, web.StaticResource)
    }
    assert served - set(table) == {("get", "/openapi.json"), ("get", "/openapi.yaml"), ("get", "/swagger")}
    checked = 0
    for (method, path), required in sorted(table.items()):
        if path in OPEN:
            continue
        for role, token in tokens.items():
            status = await _status(client, method, _concrete(path), bearer(token))
            if may(role, required):
                assert status not in (401, 403), f"{role} on {method} {path} (needs {required}): {status}"
            else:
                assert status == 403, f"{role} on {method} {path} (needs {required}): {status}"
            checked += 1
    assert checked >= 4 * 30
    for doc in ("/openapi.json", "/openapi.yaml", "/swagger", "/swagger/static/swagger-ui.css"):
        for token in tokens.values():
            assert await _status(client, "get", doc, bearer(token)) == 200


async def test_no_route_is_reachable_without_credentials(make_client: MakeClient) -> None:
    client = await auth_client(make_client)
    paths = {
        (r.method, _concrete(r.resource.canonical))
        for r in client.app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    paths |= {("GET", "/swagger/static/swagger-ui.css"), ("GET", "/no/such/route")}
    assert ("GET", "/metrics") in paths
    for method, path in sorted(paths):
        for headers in ({}, {"Authorization": "Bearer nonsense"}, basic_auth("alpha", "wrong")):
            status = await _status(client, method, path, headers)
            if path in OPEN:
                assert status == 200, path
            else:
                assert status == 401, f"{method} {path} with {headers}: {status}"
    body = await call(client, "GET", "/tasques", status=401)
    assert_error(body)


async def test_metrics_are_open_only_when_configured(make_client: MakeClient) -> None:
    closed = await auth_client(make_client)
    assert await _status(closed, "get", "/metrics", {}) == 401
    opened = await auth_client(make_client, metrics_open=True)
    assert await _status(opened, "get", "/metrics", {}) == 200
    assert await _status(opened, "get", "/tasques", {}) == 401


async def test_go_clients_basic_auth_is_the_project_and_one_of_its_tokens(make_client: MakeClient) -> None:
    client = await auth_client(make_client)
    await new_project(client, "alpha")
    await new_project(client, "beta")
    token = await issue(client, "alpha", Role.PRODUCER)
    created = await call(
        client, "POST", "/tasques", status=201, body={"queue": "q", "kind": "k"}, headers=basic_auth("alpha", token)
    )
    assert created["project"] == "alpha"
    # The user must be the token's project.
    await call(client, "GET", "/tasques", status=401, headers=basic_auth("beta", token))
    await call(client, "GET", "/tasques", status=401, headers=basic_auth("alpha", token[:-1] + "x"))


async def test_expired_and_revoked_tokens_are_refused(make_client: MakeClient, clock: object) -> None:
    client = await auth_client(make_client)
    await new_project(client, "alpha")
    short = await issue(client, "alpha", Role.VIEWER, expires_in="1m")
    await call(client, "GET", "/tasques", status=200, headers=bearer(short))
    clock.advance(timedelta(minutes=2))  # type: ignore[attr-defined]
    await call(client, "GET", "/tasques", status=401, headers=bearer(short))

    token = await issue(client, "alpha", Role.VIEWER, name="ci")
    await call(client, "GET", "/tasques", status=200, headers=bearer(token))
    [listed] = [t for t in (await call(client, "GET", "/projects/alpha/tokens", status=200,
                                         headers=ADMIN_HEADERS))["tokens"] if t.get("name") == "ci"]  # fmt: skip
    assert "token" not in listed
    assert "secret_hash" not in listed
    revoked = await call(client, "DELETE", f"/projects/alpha/tokens/{listed['id']}", status=200, headers=ADMIN_HEADERS)
    assert revoked["revoked_at"] is not None
    await call(client, "GET", "/tasques", status=401, headers=bearer(token))


async def test_a_revocation_reaches_another_server_within_the_cache_ttl(
    make_client: MakeClient, tmp_path: Path
) -> None:
    ttl = 0.3
    shared = {"store": {"sqlite": {"path": str(tmp_path / "shared.db")}}}
    settings = {**shared, **auth_overrides(token_cache_ttl=f"{ttl}s")}
    first = await make_client(settings)
    second = await make_client(settings)  # another server on the same database
    await new_project(first, "alpha")
    token = await issue(first, "alpha", Role.VIEWER)
    token_id = token.split("_")[1]
    await call(second, "GET", "/tasques", status=200, headers=bearer(token))  # now in the second's cache
    await call(first, "DELETE", f"/projects/alpha/tokens/{token_id}", status=200, headers=ADMIN_HEADERS)
    await call(first, "GET", "/tasques", status=401, headers=bearer(token))  # at once where it was revoked
    await asyncio.sleep(ttl * 1.5)
    await call(second, "GET", "/tasques", status=401, headers=bearer(token))


async def test_networks_limit_where_a_token_works(make_client: MakeClient) -> None:
    client = await auth_client(make_client)
    await new_project(client, "alpha")
    elsewhere = await issue(client, "alpha", Role.VIEWER, allowed_networks=["10.0.0.0/8", "2001:db8::/32"])
    here = await issue(client, "alpha", Role.VIEWER, allowed_networks=["127.0.0.0/8", "::1/128"])
    body = await call(client, "GET", "/tasques", status=403, headers=bearer(elsewhere))
    assert "address" in body["message"]
    await call(client, "GET", "/tasques", status=200, headers=bearer(here))
    bad = await call(client, "POST", "/projects/alpha/tokens", status=400, headers=ADMIN_HEADERS,
                     body={"role": "viewer", "allowed_networks": ["10.0.0.1/8"]})  # fmt: skip
    assert_error(bad, "allowed_networks")


async def test_the_rate_limit_answers_429_with_retry_after(make_client: MakeClient) -> None:
    client = await auth_client(make_client, rate_per_second=0.5, burst=3)
    await new_project(client, "alpha")
    token = await issue(client, "alpha", Role.VIEWER)
    statuses = []
    for _ in range(4):
        async with client.get("/tasques", headers=bearer(token)) as resp:
            statuses.append(resp.status)
            retry_after = resp.headers.get("Retry-After")
    assert statuses == [200, 200, 200, 429]
    assert retry_after is not None
    assert 1 <= int(retry_after) <= 2
    # Another token has its own bucket.
    await call(client, "GET", "/tasques", status=200, headers=bearer(await issue(client, "alpha", Role.VIEWER)))


def _jwt(claims: dict[str, object], secret: str = JWT_SECRET) -> str:
    base = {"project": "alpha", "role": "producer", "exp": int((T0 + timedelta(minutes=5)).timestamp()),
            "iss": "idp", "aud": "tasques"}  # fmt: skip
    return pyjwt.encode({**base, **claims}, secret, algorithm="HS256")


async def test_jwts_carry_the_project_and_role_and_are_checked(make_client: MakeClient) -> None:
    jwt_settings = {"hs256_secret": JWT_SECRET, "issuer": "idp", "audience": "tasques"}
    client = await auth_client(make_client, jwt=jwt_settings)
    await new_project(client, "alpha")
    created = await call(client, "POST", "/tasques", status=201, body={"queue": "q", "kind": "k"},
                         headers=bearer(_jwt({})))  # fmt: skip
    assert created["project"] == "alpha"
    # A producer may not claim.
    await call(client, "POST", "/tasques/claims", status=403, body={"queues": ["q"]}, worker="w",
               headers=bearer(_jwt({})))  # fmt: skip
    expired = _jwt({"exp": int((T0 - timedelta(minutes=1)).timestamp())})
    early = _jwt({"nbf": int((T0 + timedelta(minutes=1)).timestamp())})
    wrong_aud = _jwt({"aud": "someone-else"})
    wrong_iss = _jwt({"iss": "evil"})
    other_key = _jwt({}, secret="another-secret-of-at-least-32-characters!!")
    head, _, signature = _jwt({}).split(".")
    forged_payload = base64.urlsafe_b64encode(b'{"project":"alpha","role":"admin","exp":9999999999,'
                                              b'"iss":"idp","aud":"tasques"}').rstrip(b"=").decode()  # fmt: skip
    tampered = f"{head}.{forged_payload}.{signature}"
    unknown_role = _jwt({"role": "root"})
    unknown_project = _jwt({"project": "nope"})
    for bad in (expired, early, wrong_aud, wrong_iss, other_key, tampered, unknown_role, unknown_project):
        await call(client, "GET", "/tasques", status=401, headers=bearer(bad))


async def test_auth_failures_and_admin_actions_are_audited_without_secrets(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await auth_client(make_client)
    with caplog.at_level(logging.INFO, logger="tasques.audit"):
        await new_project(client, "alpha")
        token = await issue(client, "alpha", Role.WORKER)
        await call(client, "GET", "/tasques", status=401, headers=bearer(token[:-2] + "zz"))
        await call(client, "GET", "/tasques", status=401, headers={"Authorization": "sekrit-without-scheme"})
    lines = [r for r in caplog.records if r.name == "tasques.audit"]
    actions = [getattr(r, "event.action") for r in lines]
    assert actions == ["project.create", "token.issue", "authenticate", "authenticate"]
    text = "\n".join(r.getMessage() + repr(r.__dict__) for r in lines)
    secret = token.split("_", 2)[2]
    for forbidden in (secret, secret[:-2], ADMIN, "sekrit-without-scheme"):
        assert forbidden not in text
    assert token.split("_")[1] in text  # the token id is named


async def test_a_projects_own_rate_applies_to_its_tokens(make_client: MakeClient) -> None:
    client = await auth_client(make_client, burst=2)
    await new_project(client, "alpha", rate_per_second=0.01)
    await new_project(client, "beta")
    slow, fast = await issue(client, "alpha", Role.VIEWER), await issue(client, "beta", Role.VIEWER)
    for _ in range(2):
        await call(client, "GET", "/tasques", status=200, headers=bearer(slow))
    await call(client, "GET", "/tasques", status=429, headers=bearer(slow))
    for _ in range(2):
        await call(client, "GET", "/tasques", status=200, headers=bearer(fast))
    info = await call(
        client, "PUT", "/projects/alpha", status=200, body={"rate_per_second": 1000}, headers=ADMIN_HEADERS
    )
    assert info["rate_per_second"] == 1000
    assert info["max_outstanding_tasks"] == 1000  # unchanged: only the fields given change
