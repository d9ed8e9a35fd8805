"""Projects on the API: two projects using the same names never see, claim, count or change each other's
records (another project's id is a 404); quotas answer 429; the admin routes; the bootstrap CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from tasques.cli import main
from tasques.domain.project import Role
from tests.api.auth_helpers import ADMIN_HEADERS, auth_client, auth_overrides, bearer, issue, new_project
from tests.api.conftest import Client, MakeClient, assert_error, call


async def _two_projects(make_client: MakeClient) -> tuple[Client, dict[str, dict[Role, str]]]:
    client = await auth_client(make_client)
    tokens: dict[str, dict[Role, str]] = {}
    for name in ("alpha", "beta"):
        await new_project(client, name)
        tokens[name] = {role: await issue(client, name, role) for role in (Role.PRODUCER, Role.WORKER)}
    return client, tokens


async def test_two_projects_with_the_same_names_never_meet(make_client: MakeClient) -> None:
    client, tokens = await _two_projects(make_client)
    a, b = tokens["alpha"], tokens["beta"]
    for name, t in tokens.items():
        body = {"queue": "q", "kind": "k", "id": "same", "args": {"owner": name}}
        created = await call(client, "POST", "/tasques", status=201, body=body, headers=bearer(t[Role.PRODUCER]))
        assert created["project"] == name
        await call(client, "POST", "/recurring_tasques", status=201, headers=bearer(t[Role.PRODUCER]),
                   body={"id": "r", "schedule_expression": "@every 1m",
                         "task_definition": {"queue": "q", "kind": name}})  # fmt: skip
    got = await call(client, "GET", "/tasques/q/same", status=200, headers=bearer(a[Role.WORKER]))
    assert got["args"] == {"owner": "alpha"}
    only = await call(client, "POST", "/tasques/bulk", status=200, headers=bearer(a[Role.PRODUCER]),
                      body={"tasks": [{"queue": "q", "kind": "k", "id": "alpha-only"}]})  # fmt: skip
    assert only["results"][0]["status"] == 201
    # Another project's id answers 404, never 403.
    await call(client, "GET", "/tasques/q/alpha-only", status=404, headers=bearer(b[Role.WORKER]))
    await call(client, "PUT", "/tasques/cancel/q/alpha-only", status=404, headers=bearer(b[Role.PRODUCER]))
    listed = await call(client, "GET", "/tasques", status=200, headers=bearer(b[Role.WORKER]))
    assert [(t["id"], t["args"]) for t in listed["tasks"]] == [("same", {"owner": "beta"})]
    counts = await call(client, "GET", "/queues", status=200, headers=bearer(b[Role.WORKER]))
    assert [(c["queue"], c["counts"]["queued"]) for c in counts] == [("q", 1)]
    recurring = await call(client, "GET", "/recurring_tasques/r", status=200, headers=bearer(b[Role.PRODUCER]))
    assert recurring["task_definition"]["kind"] == "beta"
    # Pausing alpha's queue leaves beta's alone; claims take only the caller's project's tasks.
    await call(client, "PUT", "/queues/q/pause", status=200, headers=bearer(a[Role.PRODUCER]))
    settings = await call(client, "GET", "/queues/q/settings", status=200, headers=bearer(b[Role.WORKER]))
    assert settings["paused"] is False
    claimed = await call(client, "POST", "/tasques/claims", status=200, worker="w", headers=bearer(b[Role.WORKER]),
                         body={"queues": ["q"], "amount": 10, "block_for": "0s"})  # fmt: skip
    assert [(t["project"], t["id"]) for t in claimed] == [("beta", "same")]
    assert await call(client, "POST", "/tasques/claims", status=200, worker="w", headers=bearer(a[Role.WORKER]),
                      body={"queues": ["q"], "amount": 10, "block_for": "0s"}) == []  # fmt: skip
    # The same worker id in alpha cannot finish beta's claim: alpha's task of that id is not claimed.
    await call(client, "PUT", "/tasques/done/q/same", status=409, worker="w", headers=bearer(a[Role.WORKER]))
    await call(client, "PUT", "/tasques/done/q/same", status=200, worker="w", headers=bearer(b[Role.WORKER]))
    assert (await call(client, "GET", "/tasques/q/same", status=200, headers=bearer(a[Role.WORKER])))["state"] == (
        "queued"
    )


async def test_a_blocked_claim_is_woken_only_by_its_projects_tasks(make_client: MakeClient) -> None:
    client, tokens = await _two_projects(make_client)
    waiting = asyncio.create_task(
        call(
            client,
            "POST",
            "/tasques/claims",
            status=200,
            worker="w",
            headers=bearer(tokens["alpha"][Role.WORKER]),
            body={"queues": ["q"], "amount": 1, "block_for": "2s"},
        )
    )
    await asyncio.sleep(0.1)
    await call(client, "POST", "/tasques", status=201, body={"queue": "q", "kind": "k", "id": "b1"},
               headers=bearer(tokens["beta"][Role.PRODUCER]))  # fmt: skip
    await call(client, "POST", "/tasques", status=201, body={"queue": "q", "kind": "k", "id": "a1"},
               headers=bearer(tokens["alpha"][Role.PRODUCER]))  # fmt: skip
    got = await asyncio.wait_for(waiting, 5)
    assert [(t["project"], t["id"]) for t in got] == [("alpha", "a1")]


async def test_the_quota_answers_429_and_frees_up_as_tasks_finish(make_client: MakeClient) -> None:
    client = await auth_client(make_client)
    await new_project(client, "alpha", max_outstanding_tasks=2)
    producer = bearer(await issue(client, "alpha", Role.PRODUCER))
    for i in range(2):
        await call(client, "POST", "/tasques", status=201, body={"queue": "q", "kind": "k", "id": f"t{i}"},
                   headers=producer)  # fmt: skip
    refused = await call(client, "POST", "/tasques", status=429, body={"queue": "q", "kind": "k"}, headers=producer)
    assert_error(refused)
    assert "quota" in refused["message"]
    await call(client, "POST", "/tasques/bulk", status=429, headers=producer,
               body={"tasks": [{"queue": "q", "kind": "k"}]})  # fmt: skip
    info = await call(client, "GET", "/projects/alpha", status=200, headers=ADMIN_HEADERS)
    assert (info["max_outstanding_tasks"], info["outstanding_tasks"]) == (2, 2)
    await call(client, "PUT", "/tasques/cancel/q/t0", status=200, headers=producer)
    await call(client, "POST", "/tasques", status=201, body={"queue": "q", "kind": "k"}, headers=producer)
    # Raising the quota takes effect at once on this server.
    await call(client, "PUT", "/projects/alpha", status=200, body={"max_outstanding_tasks": 5}, headers=ADMIN_HEADERS)
    await call(client, "POST", "/tasques", status=201, body={"queue": "q", "kind": "k"}, headers=producer)


async def test_admin_routes_create_projects_and_act_in_any_project(make_client: MakeClient) -> None:
    client = await auth_client(make_client)
    created = await new_project(client, "alpha")
    assert created["max_outstanding_tasks"] == 1000  # the default quota
    unlimited = await new_project(client, "beta", unlimited=True)
    assert "max_outstanding_tasks" not in unlimited
    await call(client, "POST", "/projects", status=409, body={"name": "alpha"}, headers=ADMIN_HEADERS)
    both = {"name": "ok", "max_outstanding_tasks": 5, "unlimited": True}
    for bad in ({"name": "Upper"}, {"name": "a/b"}, {"name": "x" * 41}, {"name": "ok", "max_outstanding": 5}, both):
        assert_error(await call(client, "POST", "/projects", status=400, body=bad, headers=ADMIN_HEADERS))
    names = [p["name"] for p in (await call(client, "GET", "/projects", status=200, headers=ADMIN_HEADERS))["projects"]]
    assert names == ["alpha", "beta", "default"]
    await call(client, "POST", "/projects/nope/tokens", status=404, body={"role": "viewer"}, headers=ADMIN_HEADERS)
    assert_error(await call(client, "POST", "/projects/alpha/tokens", status=400, body={"role": "root"},
                            headers=ADMIN_HEADERS), "role")  # fmt: skip
    # The admin token acts in `default`, or in the project X-TASQUES-PROJECT names.
    in_alpha = {**ADMIN_HEADERS, "X-TASQUES-PROJECT": "alpha"}
    task = await call(client, "POST", "/tasques", status=201, body={"queue": "q", "kind": "k"}, headers=in_alpha)
    assert task["project"] == "alpha"
    worker = bearer(await issue(client, "alpha", Role.WORKER))
    await call(client, "GET", f"/tasques/q/{task['id']}", status=200, headers=worker)
    await call(client, "GET", f"/tasques/q/{task['id']}", status=404, headers=ADMIN_HEADERS)
    # A non-admin may name only its own project.
    await call(client, "GET", "/tasques", status=403, headers={**worker, "X-TASQUES-PROJECT": "beta"})
    await call(client, "GET", "/tasques", status=200, headers={**worker, "X-TASQUES-PROJECT": "alpha"})


async def test_without_auth_everything_is_the_default_project(client: Client) -> None:
    task = await call(client, "POST", "/tasques", status=201, body={"queue": "q", "kind": "k"})
    assert task["project"] == "default"
    await call(client, "GET", "/tasques", status=403, headers={"X-TASQUES-PROJECT": "alpha"})
    # No quota without auth: more than the default 1,000 outstanding.
    bulk = {"tasks": [{"queue": "q", "kind": "k"} for _ in range(1000)]}
    await call(client, "POST", "/tasques/bulk", status=200, body=bulk)
    await call(client, "POST", "/tasques/bulk", status=200, body=bulk)


def test_token_create_cli_makes_a_working_admin_token(tmp_path: Path, capsys: object) -> None:
    db = tmp_path / "t.db"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"store": {"sqlite": {"path": str(db)}}, "auth": {"enabled": True}}))
    assert main(["--config", str(config), "token", "create", "--admin"]) == 0
    admin = capsys.readouterr().out.strip()  # type: ignore[attr-defined]
    assert admin.startswith("tq_")
    assert main(["--config", str(config), "token", "create", "--project", "alpha", "--role", "worker"]) == 2
    assert main(["--config", str(config), "token", "create", "--project", "alpha", "--role", "worker",
                 "--create-project"]) == 0  # fmt: skip
    worker = capsys.readouterr().out.strip()  # type: ignore[attr-defined]
    asyncio.run(_use_tokens(str(db), admin, worker))


async def _use_tokens(db: str, admin: str, worker: str) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from tasques.config import Config
    from tasques.server import build_server
    from tasques.store.sqlite.store import SqliteStore

    config = Config.model_validate({"store": {"sqlite": {"path": db}}, **auth_overrides()})
    app = build_server(config, SqliteStore(db))
    async with TestClient(TestServer(app)) as client:
        projects = await call(client, "GET", "/projects", status=200, headers=bearer(admin))
        assert [p["name"] for p in projects["projects"]] == ["alpha", "default"]
        await call(client, "GET", "/tasques", status=200, headers=bearer(worker))
        await call(client, "GET", "/projects", status=403, headers=bearer(worker))
