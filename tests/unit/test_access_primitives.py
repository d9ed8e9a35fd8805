"""Token strings, allowed networks, the per-token rate limiter and the look-up cache of `tasques.api.access`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tasques.api.access.ratelimit import RateLimiter, retry_after_header
from tasques.domain.errors import NotFound, StoreUnavailable
from tasques.domain.networks import MAX_NETWORKS, NetworkError, allowed, parse_network, parse_networks
from tasques.service import tokens
from tasques.service.ttl_cache import TtlCache

# Token strings


def test_a_new_token_parses_back_to_its_id_and_a_secret_that_matches_its_hash() -> None:
    made = tokens.new_token()
    plaintext, secret_hash = made[:2]
    assert plaintext.startswith("tq_")
    assert len(plaintext) == tokens.TOKEN_LENGTH
    parsed = tokens.parse(plaintext)
    assert parsed is not None
    token_id, secret = parsed
    assert token_id == made.id
    assert len(token_id) == 16
    assert token_id.isalnum()
    assert tokens.matches(secret, secret_hash)
    assert secret not in secret_hash
    assert len(secret_hash) == 64
    assert not tokens.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), secret_hash)


def test_tokens_are_random() -> None:
    made = {tokens.new_token().plaintext for _ in range(200)}
    assert len(made) == 200
    ids = {parsed[0] for t in made if (parsed := tokens.parse(t)) is not None}
    assert len(ids) == 200


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tq_",
        "tq_abc_def",
        "xx_" + "a" * 16 + "_" + "b" * 43,
        "tq_" + "a" * 16 + "-" + "b" * 43,
        "tq_" + "a" * 15 + "_" + "b" * 44,  # the right length, the separator in the wrong place
        "tq_" + "a" * 16 + "_" + "b" * 42,
        "tq_" + "a" * 16 + "_" + "b" * 44,
        "tq_" + "a" * 16 + "_" + "b" * 42 + "=",
        "tq_" + "a" * 15 + "-_" + "b" * 43,
        "tq_" + "a" * 16 + "_" + "b" * 42 + "\n",
        "tq_" + "é" * 16 + "_" + "b" * 43,
    ],
)
def test_malformed_token_strings_do_not_parse(text: str) -> None:
    assert tokens.parse(text) is None


def test_a_secret_with_underscores_still_parses_by_position() -> None:
    text = "tq_" + "A1" * 8 + "_" + "_-" * 21 + "_"
    assert tokens.parse(text) == ("A1" * 8, "_-" * 21 + "_")


def test_matches_refuses_a_foreign_hash_without_raising() -> None:
    assert not tokens.matches("secret", "é" * 64)
    assert not tokens.matches("secret", "")


# Networks


@pytest.mark.parametrize(
    ("networks", "peer", "ok"),
    [
        ([], "203.0.113.9", True),
        ([], None, True),
        (["10.0.0.0/8"], "10.20.30.40", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),  # IPv4-mapped: a dual-stack listener's IPv4 client
        (["10.0.0.0/8"], "::ffff:11.1.2.3", False),
        (["10.0.0.0/8"], "::a01:203", False),  # IPv4-compatible is not mapped
        (["::ffff:10.0.0.0/104"], "::ffff:10.9.9.9", True),
        (["2001:db8::/32"], "2001:db8:1::5", True),
        (["2001:db8::/32"], "2001:db9::5", False),
        (["2001:db8::/32"], "10.0.0.1", False),
        (["fe80::/10"], "fe80::1%eth0", True),
        (["192.0.2.7"], "192.0.2.7", True),
        (["192.0.2.7"], "192.0.2.8", False),
        (["10.0.0.0/8"], None, False),
        (["10.0.0.0/8"], "not-an-ip", False),
        (["10.0.0.0/8"], "", False),
    ],
)
def test_a_peer_is_allowed_only_inside_the_networks(networks: list[str], peer: str | None, ok: bool) -> None:
    assert allowed(parse_networks(networks), peer) is ok


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.1/8",  # host bits set
        "10.0.0.0/33",
        "10.0.0.0 /8",
        " 10.0.0.0/8",
        "010.0.0.0/8",
        "10.0.0/8",
        "fe80::/10%eth0",
        "fe80::1%eth0",
        "2001:db8::1/32",
        "example.com",
        "",
        "::/129",
        "1" * 65,
        "10.0.0.0/+8",
    ],
)
def test_networks_are_parsed_strictly(text: str) -> None:
    with pytest.raises(NetworkError):
        parse_network(text)


def test_a_network_list_is_bounded() -> None:
    assert len(parse_networks([f"10.0.{n}.0/24" for n in range(MAX_NETWORKS)])) == MAX_NETWORKS
    with pytest.raises(NetworkError, match="at most"):
        parse_networks([f"10.0.{n}.0/24" for n in range(MAX_NETWORKS + 1)])


# Rate limits


def test_a_burst_passes_then_a_refusal_says_when_to_retry() -> None:
    limiter = RateLimiter()
    now = 1000.0
    assert [limiter.check("t", rate=2.0, burst=3, now=now) for _ in range(3)] == [None, None, None]
    wait = limiter.check("t", rate=2.0, burst=3, now=now)
    assert wait == pytest.approx(0.5)
    assert wait is not None
    assert retry_after_header(wait) == "1"
    assert limiter.check("t", 2.0, 3, now + 0.25) == pytest.approx(0.25)
    assert limiter.check("t", 2.0, 3, now + 0.5) is None  # one token refilled
    assert limiter.check("t", 2.0, 3, now + 0.5) == pytest.approx(0.5)


def test_a_slow_rate_asks_for_a_long_wait_rounded_up() -> None:
    limiter = RateLimiter()
    assert limiter.check("t", rate=0.1, burst=1, now=0.0) is None
    wait = limiter.check("t", rate=0.1, burst=1, now=2.5)
    assert wait == pytest.approx(7.5)
    assert wait is not None
    assert retry_after_header(wait) == "8"
    assert retry_after_header(0.0) == "1"


def test_keys_are_limited_apart_and_the_tracked_keys_are_bounded() -> None:
    limiter = RateLimiter(max_keys=2)
    assert limiter.check("a", 1.0, 1, 0.0) is None
    assert limiter.check("a", 1.0, 1, 0.0) is not None
    assert limiter.check("b", 1.0, 1, 0.0) is None
    assert limiter.check("a", 1.0, 1, 0.0) is not None  # a is now the most recently used
    assert limiter.check("c", 1.0, 1, 0.0) is None  # evicts b
    assert len(limiter) == 2
    assert limiter.check("b", 1.0, 1, 0.0) is None  # b comes back full, evicting a
    assert limiter.check("a", 1.0, 1, 0.0) is None


def test_a_changed_rate_starts_a_new_bucket() -> None:
    limiter = RateLimiter()
    assert limiter.check("t", 1.0, 1, 0.0) is None
    assert limiter.check("t", 1.0, 1, 0.0) is not None
    assert limiter.check("t", 5.0, 1, 0.0) is None


def test_a_clock_that_steps_back_never_adds_tokens() -> None:
    limiter = RateLimiter()
    assert limiter.check("t", 1.0, 1, 100.0) is None
    assert limiter.check("t", 1.0, 1, 50.0) is not None
    assert limiter.check("t", 1.0, 1, 100.5) is not None
    assert limiter.check("t", 1.0, 1, 101.0) is None


# The look-up cache


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_cache_keeps_values_for_the_ttl_and_misses_for_the_negative_ttl() -> None:
    clock = _Clock()
    cache: TtlCache[str] = TtlCache(ttl=2.0, negative_ttl=1.0, monotonic=clock)
    loads: list[str] = []
    values = {"a": "A"}

    async def load(key: str) -> str:
        loads.append(key)
        if key not in values:
            raise NotFound(key)
        return values[key]

    assert await cache.get("a", lambda: load("a")) == "A"
    values["a"] = "A2"
    clock.now = 1.9
    assert await cache.get("a", lambda: load("a")) == "A"
    clock.now = 2.0
    assert await cache.get("a", lambda: load("a")) == "A2"
    with pytest.raises(NotFound):
        await cache.get("b", lambda: load("b"))
    values["b"] = "B"
    clock.now = 2.9
    with pytest.raises(NotFound):
        await cache.get("b", lambda: load("b"))
    clock.now = 3.0
    assert await cache.get("b", lambda: load("b")) == "B"
    assert loads == ["a", "a", "b", "b"]
    cache.invalidate("b")
    assert await cache.get("b", lambda: load("b")) == "B"
    assert loads[-1] == "b"
    assert len(loads) == 5


async def test_concurrent_misses_share_one_load_and_errors_are_not_cached() -> None:
    cache: TtlCache[str] = TtlCache(ttl=2.0, negative_ttl=1.0, monotonic=_Clock())
    gate = asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "v"

    waiters = [asyncio.create_task(cache.get("k", slow)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == ["v"] * 10
    assert calls == 1

    async def down() -> str:
        raise StoreUnavailable("down")

    with pytest.raises(StoreUnavailable):
        await cache.get("x", down)

    async def up() -> str:
        return "x"

    assert await cache.get("x", up) == "x"


async def test_a_cancelled_load_lets_the_other_waiters_load_again() -> None:
    cache: TtlCache[str] = TtlCache(ttl=2.0, negative_ttl=1.0, monotonic=_Clock())
    never = asyncio.Event()

    async def hangs() -> str:
        await never.wait()
        return "never"

    async def quick() -> str:
        return "v"

    first = asyncio.create_task(cache.get("k", hangs))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.get("k", quick))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "v"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_the_cache_is_bounded() -> None:
    cache: TtlCache[str] = TtlCache(ttl=10.0, negative_ttl=1.0, monotonic=_Clock(), max_entries=2)
    loads: list[str] = []

    def loader(key: str) -> Callable[[], Awaitable[str]]:
        async def load() -> str:
            loads.append(key)
            return key

        return load

    for key in ("a", "b", "c", "a"):
        await cache.get(key, loader(key))
    assert loads == ["a", "b", "c", "a"]
