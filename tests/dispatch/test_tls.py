"""TLS targets: certificates generated in the test with the openssl CLI, an HTTPS aiohttp server on 127.0.0.1;
verification against a CA, insecure_skip_verify, mutual TLS with a client certificate, and the limits on TLS
material: files only inside `dispatch.tls_files_dir`, no passphrase prompt, no hint of which files exist."""

from __future__ import annotations

import asyncio
import base64
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.api.conftest import Client, assert_error, call
from tests.dispatch.conftest import ALLOW_LOOPBACK, eventually

pytestmark = [
    # TLS does not depend on the store: SQLite only.
    pytest.mark.parametrize("tasques_store", ["sqlite"], indirect=True),
]


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    # A missing tool must fail the run, never skip it: the TLS criteria would go unchecked.
    assert shutil.which("openssl"), (
        "the openssl command-line tool is required for the TLS tests (apt-get install openssl)"
    )
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=Tasques Test CA", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip
    _openssl("pkey", "-in", "client.key", "-aes256", "-passout", "pass:secret", "-out", "client-enc.key", cwd=d)
    outside = tmp_path_factory.mktemp("outside")
    shutil.copy(d / "ca.pem", outside / "ca.pem")
    (d / "link-out.pem").symlink_to(outside / "ca.pem")
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


@pytest.fixture
def dispatch_config(pki: Pki) -> dict[str, Any]:
    return {"poll_interval": "20ms", "tls_files_dir": str(pki.ca.parent), **ALLOW_LOOPBACK}


async def _https(pki: Pki, *, require_client_cert: bool) -> tuple[web.AppRunner, str, list[Any]]:
    seen: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append(peer)
        return web.Response(text="secure")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    return runner, f"https://127.0.0.1:{runner.addresses[0][1]}", seen


@pytest.fixture
async def https(pki: Pki) -> AsyncIterator[tuple[str, list[Any]]]:
    runner, url, seen = await _https(pki, require_client_cert=False)
    yield url, seen
    await runner.cleanup()


@pytest.fixture
async def mtls(pki: Pki) -> AsyncIterator[tuple[str, list[Any]]]:
    runner, url, seen = await _https(pki, require_client_cert=True)
    yield url, seen
    await runner.cleanup()


async def _run(server: Client, id: str, url: str, tls: dict[str, Any] | None) -> Any:
    request: dict[str, Any] = {"url": f"{url}/x", "timeout": "5s"}
    if tls is not None:
        request["tls"] = tls
    body = {"queue": "tls", "kind": "k", "id": id, "retry_times": 0, "http_request": request}
    await call(server, "POST", "/tasques", status=201, body=body)

    async def finished() -> Any:
        task = await call(server, "GET", f"/tasques/tls/{id}", status=200)
        return task if task["state"] in ("done", "dead") else None

    return await eventually(finished)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


async def test_verification_against_a_ca(server: Client, https: tuple[str, list[Any]], pki: Pki) -> None:
    url, _ = https
    untrusted = await _run(server, "untrusted", url, None)
    assert untrusted["state"] == "dead"
    assert "certificate" in untrusted["last_claimed"]["result"]["failure"]["error"].lower()
    assert (await _run(server, "ca-path", url, {"ca": str(pki.ca)}))["state"] == "done"
    assert (await _run(server, "ca-pem", url, {"ca": pki.ca.read_text()}))["state"] == "done"
    assert (await _run(server, "ca-b64", url, {"ca": _b64(pki.ca)}))["state"] == "done"
    assert (await _run(server, "skip", url, {"insecure_skip_verify": True}))["state"] == "done"


async def test_mutual_tls(server: Client, mtls: tuple[str, list[Any]], pki: Pki) -> None:
    url, seen = mtls
    assert (await _run(server, "no-cert", url, {"ca": str(pki.ca)}))["state"] == "dead"
    files = {"ca": str(pki.ca), "cert": str(pki.client_cert), "key": str(pki.client_key)}
    assert (await _run(server, "files", url, files))["state"] == "done"
    inline = {"ca": _b64(pki.ca), "cert": _b64(pki.client_cert), "key": _b64(pki.client_key)}
    done = await _run(server, "inline", url, inline)
    assert done["state"] == "done"
    assert done["last_claimed"]["result"]["success"]["body"] == "secure"
    subjects = [dict(x[0] for x in peer["subject"]) for peer in seen if peer]
    assert subjects == [{"commonName": "client"}, {"commonName": "client"}]


async def test_cert_without_key_is_a_400(server: Client) -> None:
    request = {"url": "https://127.0.0.1:1/", "tls": {"cert": "/x.pem"}}
    await call(server, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "http_request": request})


async def test_tls_paths_outside_the_files_dir_are_a_400_naming_the_field(server: Client, pki: Pki) -> None:
    outside = str(pki.ca.parent.parent / "elsewhere.pem")
    for tls, field in (
        ({"ca": outside}, "http_request.tls.ca"),
        ({"ca": "../ca.pem"}, "http_request.tls.ca"),
        ({"ca": f"{pki.ca.parent}/../x/ca.pem"}, "http_request.tls.ca"),
        ({"cert": str(pki.client_cert), "key": "/etc/ssl/private/server.key"}, "http_request.tls.key"),
    ):
        request = {"url": "https://127.0.0.1:1/", "tls": tls}
        body = await call(
            server, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "http_request": request}
        )
        assert_error(body, field)


async def test_file_errors_never_tell_which_files_exist(server: Client, https: tuple[str, list[Any]]) -> None:
    url, _ = https
    # A symbolic link out of the directory, a missing file and a file that is not PEM: one and the same text.
    errors = set()
    for id, name in (("link", "link-out.pem"), ("missing", "nope.pem"), ("not-pem", "server.ext")):
        dead = await _run(server, id, url, {"ca": name})
        assert dead["state"] == "dead"
        errors.add(dead["last_claimed"]["result"]["failure"]["error"])
    assert errors == {
        "tls.ca: the file cannot be used (missing, unreadable, outside dispatch.tls_files_dir, or not PEM)"
    }
    assert (await _run(server, "relative", url, {"ca": "ca.pem"}))["state"] == "done"


async def test_an_encrypted_key_fails_cleanly_without_a_prompt(
    server: Client, mtls: tuple[str, list[Any]], pki: Pki
) -> None:
    url, seen = mtls
    files = {"ca": str(pki.ca), "cert": str(pki.client_cert), "key": "client-enc.key"}
    loop = asyncio.get_running_loop()
    start = loop.time()
    dead = await _run(server, "encrypted", url, files)
    assert loop.time() - start < 5, "OpenSSL waited for a passphrase"
    assert dead["state"] == "dead"
    assert (
        dead["last_claimed"]["result"]["failure"]["error"] == "tls.key: the key is encrypted; give an unencrypted key"
    )
    assert seen == []  # nothing was sent
    # Inline, an encrypted key is refused when the task is created.
    inline = {"cert": _b64(pki.client_cert), "key": (pki.ca.parent / "client-enc.key").read_text()}
    request = {"url": f"{url}/x", "tls": inline}
    body = await call(server, "POST", "/tasques", status=400, body={"queue": "q", "kind": "k", "http_request": request})
    assert_error(body, "http_request.tls.key")
