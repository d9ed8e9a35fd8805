"""The outbound policy (pure), its configuration, and the pure checks of an HTTP target's request."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from tasques.config import ConfigError, load_config
from tasques.dispatch.connect import DestinationRefused, destination, guarded_socket_factory
from tasques.dispatch.policy import OutboundPolicy
from tasques.domain.http_target import HttpRequest, header_problems, request_problems, tls_path_problem

DEFAULT = OutboundPolicy()

REFUSED = [
    "127.0.0.1", "127.255.0.9", "0.0.0.0", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "100.64.0.1", "100.127.255.254", "224.0.0.251", "239.1.1.1", "255.255.255.255",
    "240.0.0.1", "192.0.2.5", "198.18.0.1", "::", "::1", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1",
    "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::127.0.0.1",
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "2002:a9fe:a9fe::1", "2001::1", "2001:db8::1",
    "fec0::1",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8",
          "64:ff9b::808:808", "2002:808:808::1"]  # fmt: skip


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    reason = DEFAULT.refusal(address, address)
    assert reason is not None
    assert reason.startswith("destination refused: ")
    assert "dispatch.allowed_networks" in reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.refusal(address, address) is None


def test_a_name_is_judged_by_the_address_it_resolved_to() -> None:
    reason = DEFAULT.refusal("metadata.example", "169.254.169.254")
    assert reason is not None
    assert "metadata.example resolves to 169.254.169.254" in reason
    assert "link-local" in reason
    assert DEFAULT.refusal("example.com", "93.184.215.14") is None


def test_allowed_networks_and_hosts() -> None:
    policy = OutboundPolicy.from_config(["127.0.0.0/8", "fd00::/8"], ["Hooks.Internal."])
    assert policy.refusal("127.0.0.1", "127.0.0.1") is None
    assert policy.refusal("x", "::ffff:127.0.0.2") is None  # the mapped form of an allowed address
    assert policy.refusal("x", "fd00::5") is None
    assert policy.refusal("x", "10.0.0.1") is not None
    assert policy.refusal("x", "::1") is not None  # IPv6 loopback is not in 127.0.0.0/8
    assert policy.refusal("hooks.internal", "10.0.0.1") is None  # an allowed host, whatever it resolves to
    assert policy.refusal("other.internal", "10.0.0.1") is not None


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("ALLOWED_NETWORKS", "[10.0.0.1/8]", "has host bits set"),
        ("ALLOWED_NETWORKS", "[not-a-net]", "not a network"),
        ("ALLOWED_HOSTS", "[127.0.0.1]", "is an IP address"),
        ("ALLOWED_HOSTS", "['bad host']", "not a host name"),
        ("TLS_FILES_DIR", "relative/dir", "absolute path"),
    ],
)
def test_the_policy_settings_are_validated_at_start_up(setting: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as e:
        load_config(environ={f"TASQUES_DISPATCH_{setting}": value})
    assert f"dispatch.{setting.lower()}" in str(e.value)


def test_the_socket_factory_refuses_before_creating_a_socket() -> None:
    create = guarded_socket_factory(DEFAULT)
    metadata = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))
    with pytest.raises(DestinationRefused, match="not being dispatched"):
        create(metadata)  # outside any dispatched request: refused too
    with destination("169.254.169.254") as dest, pytest.raises(DestinationRefused):
        create(metadata)
    assert dest.refusals == [DEFAULT.refusal("169.254.169.254", "169.254.169.254")]
    allowing = guarded_socket_factory(OutboundPolicy.from_config(["169.254.169.254/32"], []))
    with destination("169.254.169.254"):
        allowing(metadata).close()  # a socket, not yet connected


def test_header_checks() -> None:
    assert header_problems({"X-Trace": "abc", "Authorization": "Bearer x\ty"}) == []
    for headers, problem in (
        ({"X-A": "a\r\nInjected: 1"}, "CR, LF, NUL"),
        ({"X-A": "a\x00"}, "CR, LF, NUL"),
        ({"X A": "1"}, "RFC 7230 token"),
        ({"X-A\n": "1"}, "RFC 7230 token"),
        ({"": "1"}, "RFC 7230 token"),
        ({"Host": "internal"}, "set by the dispatcher"),
        ({"transfer-encoding": "chunked"}, "set by the dispatcher"),
        ({"Content-Length": "5"}, "set by the dispatcher"),
        ({"Connection": "close"}, "set by the dispatcher"),
        ({"X-A": "1", "x-a": "2"}, "given twice"),
        ({f"X-{i}": "v" for i in range(65)}, "at most 64 headers"),
        ({"X-A": "v" * 9000}, "longer than"),
    ):
        problems = header_problems(headers)
        assert any(problem in p for p in problems), (headers, problems)


def test_request_problems_name_the_sub_field() -> None:
    request = HttpRequest.model_validate(
        {"url": "http://x:99999/", "timeout": "31m", "headers": {"Host": "y"}, "tls": {"ca": "/etc/ca.pem"}}
    )
    assert [f for f, _ in request_problems(request, None)] == ["url", "headers", "timeout", "tls.ca"]
    ok = HttpRequest(url="https://x/", timeout=timedelta(minutes=30))
    assert request_problems(ok, None) == []


def test_tls_path_checks() -> None:
    assert "tls_files_dir is not set" in (tls_path_problem("/etc/tasques/ca.pem", None) or "")
    assert tls_path_problem("/etc/tasques/ca.pem", "/etc/tasques") is None
    assert tls_path_problem("client/ca.pem", "/etc/tasques/") is None
    for path in ("/etc/ssl/private/key.pem", "../key.pem", "/etc/tasques/../passwd", "a/../../b", "/etc/tasques"):
        assert tls_path_problem(path, "/etc/tasques") is not None, path
