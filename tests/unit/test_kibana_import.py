"""`tasques kibana import` against a stand-in for Kibana on 127.0.0.1 that checks the request Kibana's saved
objects import API documents (POST [/s/{space}]/api/saved_objects/_import?overwrite=true, `kbn-xsrf`,
Authorization, multipart/form-data with one `file` part named *.ndjson) and answers as Kibana does."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tasques.cli import main
from tasques.kibana.cli import EXIT_IMPORT_ERRORS, EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from tasques.kibana.objects import for_prefix, load, to_ndjson
from tests.dispatch.test_tls import Pki, pki  # noqa: F401  (the fixture: a CA and a 127.0.0.1 certificate)
from tests.process import free_port


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    parts: list[tuple[str | None, str | None, bytes]]  # (name, filename, content)


@dataclass
class Kibana:
    url: str
    # The Authorization value it accepts (None: no security, like a Kibana without it)
    expect_auth: str | None = None
    answer: dict[str, Any] | None = None  # a 200 body to give instead of the success
    seen: list[Seen] = field(default_factory=list)


async def _handle(kibana: Kibana, request: web.Request) -> web.Response:
    parts = []
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert not isinstance(part, type(reader)), "nested multipart"
            parts.append((part.name, part.filename, bytes(await part.read())))  # type: ignore[union-attr]
    kibana.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), parts))
    if kibana.expect_auth is not None and request.headers.get("Authorization") != kibana.expect_auth:
        body = {"statusCode": 401, "error": "Unauthorized", "message": "[security_exception]: unable to authenticate"}
        return web.json_response(body, status=401)
    if request.headers.get("kbn-xsrf") is None:
        return web.json_response(
            {"statusCode": 400, "error": "Bad Request", "message": "Request must contain a kbn-xsrf header."},
            status=400,
        )
    files = [p for p in parts if p[0] == "file"]
    if len(files) != 1 or not (files[0][1] or "").endswith(".ndjson"):
        return web.json_response(
            {"statusCode": 415, "error": "Unsupported Media Type", "message": "Unsupported Media Type"}, status=415
        )
    lines = [json.loads(line) for line in files[0][2].decode().splitlines() if line.strip()]
    if kibana.answer is not None:
        return web.json_response(kibana.answer)
    results = [{"type": o["type"], "id": o["id"], "meta": {"title": o["attributes"]["title"]}} for o in lines]
    return web.json_response({"success": True, "successCount": len(lines), "successResults": results})


def _serve(kibana: Kibana, port: int, ssl_context: Any = None) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return await _handle(kibana, request)

    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@pytest.fixture
def kibana() -> Iterator[Kibana]:
    port = free_port()
    stand_in = Kibana(f"http://127.0.0.1:{port}")
    yield from (stand_in for _ in _serve(stand_in, port))


@pytest.fixture
def https_kibana(pki: Pki) -> Iterator[Kibana]:  # noqa: F811
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    port = free_port()
    stand_in = Kibana(f"https://127.0.0.1:{port}")
    yield from (stand_in for _ in _serve(stand_in, port, context))


def _run(*args: str) -> int:
    return main(["kibana", "import", *args])


def _the_request(kibana: Kibana) -> Seen:
    (seen,) = kibana.seen
    return seen


def test_import_sends_the_documented_request_with_basic_auth(
    kibana: Kibana, capsys: pytest.CaptureFixture[str]
) -> None:
    kibana.expect_auth = "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    assert (
        _run("--url", kibana.url, "--user", "elastic", "--password", "s3cret", "--index-prefix", "tasques") == EXIT_OK
    )
    seen = _the_request(kibana)
    assert (seen.method, seen.path, seen.query) == ("POST", "/api/saved_objects/_import", {"overwrite": "true"})
    assert seen.headers["kbn-xsrf"] == "true"
    assert seen.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    ((name, filename, content),) = seen.parts
    assert (name, filename) == ("file", "tasques.ndjson")
    assert content == (Path(__file__).resolve().parents[2] / "kibana" / "tasques.ndjson").read_bytes()
    out = capsys.readouterr().out
    assert f"imported {len(load())} objects" in out


def test_api_key_space_and_prefix(kibana: Kibana, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("a2V5LWlkOmtleQ==\n")
    kibana.expect_auth = "ApiKey a2V5LWlkOmtleQ=="
    assert (
        _run("--url", kibana.url + "/", "--api-key", f"@{tmp_path / 'key'}", "--space", "ops", "--index-prefix", "acme")
        == EXIT_OK
    )
    seen = _the_request(kibana)
    assert (seen.path, seen.query) == ("/s/ops/api/saved_objects/_import", {"overwrite": "true"})
    ((_, _, content),) = seen.parts
    assert content == to_ndjson(for_prefix(load(), "acme"))
    assert b'"title":"acme-tasks"' in content
    assert b"tasques-tasks" not in content


def test_an_id_and_key_pair_is_encoded_as_kibana_expects(kibana: Kibana) -> None:
    kibana.expect_auth = "ApiKey " + base64.b64encode(b"key-id:the-key").decode()
    assert _run("--url", kibana.url, "--api-key", "key-id:the-key", "--index-prefix", "tasques") == EXIT_OK


def test_the_default_prefix_comes_from_the_configuration(kibana: Kibana, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("store:\n  elasticsearch:\n    index_prefix: from-config\n")
    assert main(["--config", str(config), "kibana", "import", "--url", kibana.url]) == EXIT_OK
    ((_, _, content),) = _the_request(kibana).parts
    assert b'"title":"from-config-tasks"' in content


def test_bad_credentials_exit_refused_with_kibanas_message(kibana: Kibana, capsys: pytest.CaptureFixture[str]) -> None:
    kibana.expect_auth = "Basic " + base64.b64encode(b"elastic:right").decode()
    assert (
        _run("--url", kibana.url, "--user", "elastic", "--password", "wrong", "--index-prefix", "tasques")
        == EXIT_REFUSED
    )
    err = capsys.readouterr().err
    assert "401" in err
    assert "unable to authenticate" in err
    assert "--api-key" in err


def test_errors_in_the_answer_exit_import_errors_naming_each(
    kibana: Kibana, capsys: pytest.CaptureFixture[str]
) -> None:
    kibana.answer = {
        "success": False,
        "successCount": 11,
        "errors": [
            {
                "id": "tasques-dashboard",
                "type": "dashboard",
                "title": "Tasques: overview",
                "meta": {"title": "Tasques: overview", "icon": "dashboardApp"},
                "error": {"type": "missing_references", "references": [{"type": "lens", "id": "tasques-lens-x"}]},
            }
        ],
    }
    assert _run("--url", kibana.url, "--index-prefix", "tasques") == EXIT_IMPORT_ERRORS
    err = capsys.readouterr().err
    assert "imported 11 objects" in err
    assert "dashboard tasques-dashboard (Tasques: overview): missing_references: lens tasques-lens-x" in err


def test_unreachable_kibana_exits_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--url", f"http://127.0.0.1:{free_port()}", "--index-prefix", "tasques") == EXIT_UNREACHABLE
    assert "cannot reach Kibana" in capsys.readouterr().err


def test_usage_errors(kibana: Kibana, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--url", kibana.url, "--password", "p", "--index-prefix", "tasques") == EXIT_USAGE
    assert _run("--url", kibana.url, "--index-prefix", "Not-Valid") == EXIT_USAGE
    assert _run("--url", kibana.url, "--index-prefix", "tasques", "--ca-certs", "/nonexistent.pem") == EXIT_USAGE
    assert kibana.seen == []
    with pytest.raises(SystemExit) as both:
        _run("--url", kibana.url, "--user", "u", "--api-key", "k")
    assert both.value.code == EXIT_USAGE


def test_tls_is_verified_against_ca_certs_or_skipped_with_insecure(https_kibana: Kibana, pki: Pki) -> None:  # noqa: F811
    assert _run("--url", https_kibana.url, "--index-prefix", "tasques") == EXIT_UNREACHABLE  # unknown CA
    assert _run("--url", https_kibana.url, "--index-prefix", "tasques", "--ca-certs", str(pki.ca)) == EXIT_OK
    assert _run("--url", https_kibana.url, "--index-prefix", "tasques", "--insecure") == EXIT_OK
    assert len(https_kibana.seen) == 2  # the refused handshake never became a request


def test_ndjson_prints_the_objects_for_a_prefix(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["kibana", "ndjson", "--index-prefix", "acme"]) == EXIT_OK
    assert capsysbinary.readouterr().out == to_ndjson(for_prefix(load(), "acme"))
