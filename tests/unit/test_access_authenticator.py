"""The Authenticator end to end with real token strings, real hashes and real JWTs; time is driven by hand."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
from multidict import CIMultiDict

from tasques.api.access import PROJECT_HEADER, Authenticator, Principal
from tasques.config import AuthConfig, BasicAuthUser, Config
from tasques.domain.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    StoreUnavailable,
    Unauthenticated,
)
from tasques.domain.project import ApiToken, Project, Role
from tasques.domain.task import Metadata
from tasques.service import tokens
from tasques.service.clock import ManualClock

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ADMIN_TOKEN = "bootstrap-admin-credential-of-40-chars!!"
HS_SECRET = "h" * 40


class Records:
    """The tokens and projects a store would hold, counting reads."""

    def __init__(self) -> None:
        self.tokens: dict[str, ApiToken] = {}
        self.projects: dict[str, Project] = {}
        self.reads = 0
        self.down = False

    async def get_token(self, token_id: str) -> ApiToken:
        self.reads += 1
        if self.down:
            raise StoreUnavailable("store down")
        if token_id not in self.tokens:
            raise NotFound(token_id)
        return self.tokens[token_id]

    async def get_project(self, name: str) -> Project:
        if name not in self.projects:
            raise NotFound(name)
        return self.projects[name]

    def add_project(self, name: str, rate: float | None = None) -> None:
        meta = Metadata(created_at=T0, modified_at=T0)
        self.projects[name] = Project(name=name, max_outstanding_tasks=1000, rate_per_second=rate, metadata=meta)

    def issue(self, project: str = "billing", role: Role = Role.PRODUCER, **fields: Any) -> str:
        made = tokens.new_token()
        meta = Metadata(created_at=T0, modified_at=T0)
        self.tokens[made.id] = ApiToken(
            id=made.id, project=project, role=role, secret_hash=made.secret_hash, metadata=meta, **fields
        )
        return made.plaintext

    def revoke(self, plaintext: str) -> None:
        token_id = _id(plaintext)
        self.tokens[token_id] = self.tokens[token_id].model_copy(update={"revoked_at": T0})


def _id(plaintext: str) -> str:
    parsed = tokens.parse(plaintext)
    assert parsed is not None
    return parsed[0]


class World:
    def __init__(self, basic_users: list[BasicAuthUser] | None = None, **config: Any) -> None:
        settings: dict[str, Any] = {"enabled": True, "admin_token": ADMIN_TOKEN, "jwt": {"hs256_secret": HS_SECRET}}
        settings.update(config)
        self.clock = ManualClock(T0)
        self.records = Records()
        self.records.add_project("default")
        self.records.add_project("billing")
        self.auth = Authenticator(
            AuthConfig.model_validate(settings),
            self.records,
            basic_users=basic_users or [],
            clock=self.clock,
            monotonic=lambda: self.clock.now.timestamp(),
        )

    async def call(self, authorization: str | None = None, peer: str | None = "192.0.2.1", **headers: str) -> Principal:
        sent = CIMultiDict(headers)
        if authorization is not None:
            sent["Authorization"] = authorization
        return await self.auth.authenticate(sent, peer, "/tasques")

    def advance(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# Modes


async def test_with_auth_off_every_request_is_project_default_admin() -> None:
    world = World(enabled=False)
    assert await world.call() == Principal("default", Role.ADMIN, None, "none", "anonymous")
    assert await world.call("Bearer whatever") == Principal("default", Role.ADMIN, None, "none", "anonymous")
    assert (await world.call(**{PROJECT_HEADER: "default"})).project == "default"
    with pytest.raises(Forbidden, match="auth is off"):
        await world.call(**{PROJECT_HEADER: "billing"})


async def test_with_auth_off_the_static_basic_users_still_guard_every_route() -> None:
    world = World([BasicAuthUser(name="ops", password="pw")], enabled=False)
    assert await world.call(_basic("ops", "pw")) == Principal("default", Role.ADMIN, None, "basic", "basic:ops")
    for header in (None, _basic("ops", "nope"), _basic("nobody", "pw"), "Bearer " + ADMIN_TOKEN):
        with pytest.raises(Unauthenticated):
            await world.call(header)
    with pytest.raises(Forbidden):  # no projects without auth
        await world.call(_basic("ops", "pw"), **{PROJECT_HEADER: "billing"})


async def test_static_basic_users_map_to_the_configured_project_and_role() -> None:
    world = World([BasicAuthUser(name="ops", password="pw")], basic_auth_project="billing", basic_auth_role="viewer")
    assert await world.call(_basic("ops", "pw")) == Principal("billing", Role.VIEWER, None, "basic", "basic:ops")


async def test_a_bearer_token_gives_its_project_and_role() -> None:
    world = World()
    plaintext = world.records.issue("billing", Role.WORKER)
    assert await world.call(f"Bearer {plaintext}") == Principal(
        "billing", Role.WORKER, _id(plaintext), "token", f"token:{_id(plaintext)}"
    )
    assert (await world.call(f"bearer  {plaintext} ")).token_id == _id(plaintext)


@pytest.mark.parametrize("variant", ["wrong secret", "unknown id", "malformed"])
async def test_a_bad_bearer_token_is_unauthenticated(variant: str) -> None:
    world = World()
    plaintext = world.records.issue()
    token_id, secret = plaintext[3:19], plaintext[20:]
    sent = {
        "wrong secret": f"tq_{token_id}_{tokens.new_token().plaintext[20:]}",
        "unknown id": f"tq_{'Z' * 16}_{secret}",
        "malformed": plaintext[:-1],
    }[variant]
    with pytest.raises(Unauthenticated):
        await world.call(f"Bearer {sent}")


async def test_no_or_unknown_credentials_are_unauthenticated() -> None:
    world = World()
    with pytest.raises(Unauthenticated, match="authentication required"):
        await world.call()
    for header in ("Digest abc", "Bearer", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "x" * 20_000):
        with pytest.raises(Unauthenticated, match="invalid credentials"):
            await world.call(header)


async def test_basic_auth_with_a_token_needs_the_token_s_project_as_user() -> None:
    world = World()
    plaintext = world.records.issue("billing", Role.WORKER)
    assert (await world.call(_basic("billing", plaintext))).role is Role.WORKER  # the Go client
    for user in ("default", "other", ""):
        with pytest.raises(Unauthenticated):
            await world.call(_basic(user, plaintext))


async def test_the_bootstrap_admin_token_acts_in_any_project() -> None:
    world = World()
    admin = await world.call(f"Bearer {ADMIN_TOKEN}")
    assert admin == Principal("default", Role.ADMIN, None, "token", "admin-token")
    assert (await world.call(f"Bearer {ADMIN_TOKEN}", **{PROJECT_HEADER: "billing"})).project == "billing"
    with pytest.raises(Unauthenticated):
        await world.call(f"Bearer {ADMIN_TOKEN[:-1]}")
    with pytest.raises(Unauthenticated):
        await World(admin_token=None).call(f"Bearer {ADMIN_TOKEN}")


async def test_the_project_header_selects_for_admins_and_must_match_for_everyone_else() -> None:
    world = World()
    producer = world.records.issue("billing", Role.PRODUCER)
    admin = world.records.issue("billing", Role.ADMIN)
    assert (await world.call(f"Bearer {producer}", **{PROJECT_HEADER: "billing"})).project == "billing"
    with pytest.raises(Forbidden, match="'billing'"):
        await world.call(f"Bearer {producer}", **{PROJECT_HEADER: "default"})
    assert (await world.call(f"Bearer {admin}")).project == "billing"
    assert (await world.call(f"Bearer {admin}", **{PROJECT_HEADER: "default"})).project == "default"
    with pytest.raises(InvalidInput) as e:
        await world.call(f"Bearer {admin}", **{PROJECT_HEADER: "Not/A/Project"})
    assert e.value.problems[0].field == PROJECT_HEADER


# JWTs


def _jwt(**claims: Any) -> str:
    body = {"exp": T0.timestamp() + 600, "project": "billing", "role": "worker", "sub": "bot", **claims}
    return "Bearer " + pyjwt.encode(body, HS_SECRET, algorithm="HS256")


async def test_a_jwt_gives_the_project_and_role_of_its_claims() -> None:
    world = World()
    assert await world.call(_jwt()) == Principal("billing", Role.WORKER, None, "jwt", "jwt:bot")
    with pytest.raises(Forbidden):
        await world.call(_jwt(), **{PROJECT_HEADER: "default"})
    assert (await world.call(_jwt(role="admin"), **{PROJECT_HEADER: "default"})).project == "default"


async def test_a_bad_jwt_or_one_naming_an_unknown_project_is_unauthenticated() -> None:
    world = World()
    for header in (_jwt(project="nowhere"), _jwt(role="root"), _jwt(exp=T0.timestamp() - 60)):
        with pytest.raises(Unauthenticated):
            await world.call(header)
    with pytest.raises(Unauthenticated):
        await World(jwt={}).call(_jwt())  # JWT not configured


# Expiry, revocation and the look-up cache


async def test_an_expired_or_revoked_token_fails() -> None:
    world = World(token_cache_ttl="0s")
    expiring = world.records.issue(expires_at=T0 + timedelta(minutes=1))
    revoked = world.records.issue()
    world.records.revoke(revoked)
    assert (await world.call(f"Bearer {expiring}")).project == "billing"
    world.advance(60)
    with pytest.raises(Unauthenticated):
        await world.call(f"Bearer {expiring}")
    with pytest.raises(Unauthenticated):
        await world.call(f"Bearer {revoked}")


async def test_a_revocation_is_seen_once_the_cache_ttl_has_passed() -> None:
    world = World(token_cache_ttl="2s")
    plaintext = world.records.issue()
    await world.call(f"Bearer {plaintext}")
    world.records.revoke(plaintext)
    world.advance(1.9)
    assert (await world.call(f"Bearer {plaintext}")).token_id == _id(plaintext)  # the cached record
    assert world.records.reads == 1
    world.advance(0.1)
    with pytest.raises(Unauthenticated):
        await world.call(f"Bearer {plaintext}")
    assert world.records.reads == 2


async def test_forget_token_makes_a_local_revocation_effective_at_once() -> None:
    world = World()
    plaintext = world.records.issue()
    await world.call(f"Bearer {plaintext}")
    world.records.revoke(plaintext)
    world.auth.forget_token(_id(plaintext))
    with pytest.raises(Unauthenticated):
        await world.call(f"Bearer {plaintext}")


async def test_unknown_token_ids_are_cached_briefly() -> None:
    world = World(token_cache_ttl="5s")
    unknown = tokens.new_token().plaintext
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await world.call(f"Bearer {unknown}")
    assert world.records.reads == 1
    world.advance(1)
    with pytest.raises(Unauthenticated):
        await world.call(f"Bearer {unknown}")
    assert world.records.reads == 2


async def test_a_store_that_is_down_is_not_a_401_and_is_not_cached() -> None:
    world = World()
    plaintext = world.records.issue()
    world.records.down = True
    with pytest.raises(StoreUnavailable):
        await world.call(f"Bearer {plaintext}")
    world.records.down = False
    assert (await world.call(f"Bearer {plaintext}")).project == "billing"


# Networks and rate limits


@pytest.mark.parametrize(
    ("peer", "ok"),
    [
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),
        ("2001:db8:0:1::7", True),
        ("192.0.2.1", False),
        ("::ffff:192.0.2.1", False),
        ("2001:db9::1", False),
        (None, False),
    ],
)
async def test_a_token_works_only_from_its_networks(peer: str | None, ok: bool) -> None:
    world = World()
    plaintext = world.records.issue(allowed_networks=["10.0.0.0/8", "2001:db8::/48"])
    if ok:
        assert (await world.call(f"Bearer {plaintext}", peer=peer)).token_id == _id(plaintext)
    else:
        with pytest.raises(Forbidden):
            await world.call(f"Bearer {plaintext}", peer=peer)


async def test_a_token_over_its_rate_is_refused_with_the_seconds_to_wait() -> None:
    world = World(rate_per_second=2, burst=2)
    plaintext, other = world.records.issue(), world.records.issue()
    await world.call(f"Bearer {plaintext}")
    await world.call(f"Bearer {plaintext}")
    with pytest.raises(RateLimited) as e:
        await world.call(f"Bearer {plaintext}")
    assert e.value.retry_after == pytest.approx(0.5)
    await world.call(f"Bearer {other}")  # each token has its own bucket
    world.advance(0.5)
    await world.call(f"Bearer {plaintext}")


async def test_a_project_rate_overrides_the_server_default() -> None:
    world = World(rate_per_second=1000, burst=1)
    world.records.add_project("slow", rate=0.25)
    plaintext = world.records.issue("slow")
    await world.call(f"Bearer {plaintext}")
    with pytest.raises(RateLimited) as e:
        await world.call(f"Bearer {plaintext}")
    assert e.value.retry_after == pytest.approx(4.0)


# The audit trail


async def test_each_failure_logs_one_audit_line_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    world = World([BasicAuthUser(name="ops", password="static-password")])
    plaintext = world.records.issue(allowed_networks=["10.0.0.0/8"])
    token_id, secret = plaintext[3:19], plaintext[20:]
    wrong = f"tq_{token_id}_{'A' * 43}"
    attempts: list[tuple[str | None, str]] = [
        (f"Bearer {wrong}", "wrong secret"),
        (_basic("other", plaintext), "basic auth user is not the token's project"),
        (_basic("ops", "static-passwordX"), "wrong basic credentials"),
        (f"Bearer {ADMIN_TOKEN}x", "jwt: malformed"),
        (ADMIN_TOKEN, "unknown credentials not accepted"),  # no scheme: the credential itself
        (f"Bearer {plaintext}", "peer outside the token's networks"),
    ]
    caplog.set_level(logging.INFO, logger="tasques.audit")
    for header, _ in attempts:
        with pytest.raises((Unauthenticated, Forbidden)):
            await world.call(header, peer="192.0.2.1")
    lines = [r for r in caplog.records if r.name == "tasques.audit"]
    assert [r.__dict__["event.reason"] for r in lines] == [reason for _, reason in attempts]
    assert lines[0].__dict__["tasques.token.id"] == token_id
    assert lines[0].__dict__["source.ip"] == "192.0.2.1"
    assert lines[0].__dict__["url.path"] == "/tasques"
    everything = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for leaked in (secret, "A" * 43, plaintext, "static-password", ADMIN_TOKEN, "Bearer", "Basic "):
        assert leaked not in everything


async def test_from_config_takes_the_static_users_of_the_server_section() -> None:
    config = Config.model_validate({"server": {"basic_auth": [{"name": "ops", "password": "pw"}]}})
    authenticator = Authenticator.from_config(config, Records())
    sent = CIMultiDict({"Authorization": _basic("ops", "pw")})
    assert (await authenticator.authenticate(sent, None)).actor == "basic:ops"
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(CIMultiDict(), None)
