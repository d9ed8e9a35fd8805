"""JWT verification with real keys: HS256, RS256 and ES256 from a JWKS file, each key pinned to its algorithm."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tasques.api.access.jwt import JwksError, JwtError, JwtVerifier, load_jwks
from tasques.config import JwtConfig
from tasques.domain.project import Role

SECRET = "s" * 40
NOW = 1_750_000_000.0
ISS = "https://idp.example"
AUD = "tasques"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _jwk(key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPublicKey) else ECAlgorithm
    return {**algorithm.to_jwk(key, as_dict=True), "kid": kid, **extra}


def _write_jwks(path: Path, *keys: dict[str, Any]) -> str:
    path.write_text(json.dumps({"keys": list(keys)}))
    return str(path)


@pytest.fixture
def jwks(tmp_path: Path) -> str:
    return _write_jwks(
        tmp_path / "jwks.json", _jwk(RSA_KEY.public_key(), "rsa-1"), _jwk(EC_KEY.public_key(), "ec-1", alg="ES256")
    )


def _claims(**override: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "ci-bot",
        "exp": NOW + 300,
        "nbf": NOW - 10,
        "project": "billing",
        "role": "producer",
    }
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


def _verifier(clock: Clock, **config: Any) -> JwtVerifier:
    settings: dict[str, Any] = {"hs256_secret": SECRET, "issuer": ISS, "audience": AUD}
    settings.update(config)
    return JwtVerifier(JwtConfig.model_validate(settings), clock, clock)


def _hs(claims: dict[str, Any], key: str | bytes = SECRET, **headers: Any) -> str:
    return pyjwt.encode(claims, key, algorithm="HS256", headers=headers or None)


def test_an_hs256_token_gives_its_project_role_and_subject() -> None:
    found = _verifier(Clock()).verify(_hs(_claims()))
    assert (found.project, found.role, found.subject, found.expires_at) == (
        "billing",
        Role.PRODUCER,
        "ci-bot",
        NOW + 300,
    )


def test_rs256_and_es256_tokens_verify_with_the_key_their_kid_names(jwks: str) -> None:
    verifier = _verifier(Clock(), jwks_file=jwks)
    rs = pyjwt.encode(_claims(role="worker"), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    es = pyjwt.encode(_claims(role="viewer"), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    assert verifier.verify(rs).role is Role.WORKER
    assert verifier.verify(es).role is Role.VIEWER


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (_claims(exp=NOW - 11), "expired"),
        (_claims(nbf=NOW + 11), "not yet valid"),
        (_claims(iss="https://evil.example"), "wrong issuer"),
        (_claims(iss=None), "missing claim"),
        (_claims(aud="other"), "wrong audience"),
        (_claims(aud=None), "missing claim"),
        (_claims(exp=None), "missing claim"),
        (_claims(exp="soon"), "malformed time claim"),
        (_claims(nbf=True), "malformed time claim"),
        (_claims(project=None), "missing or invalid project claim"),
        (_claims(project="Has/Slash"), "missing or invalid project claim"),
        (_claims(project=["billing"]), "missing or invalid project claim"),
        (_claims(project="p" * 41), "missing or invalid project claim"),
        (_claims(role=None), "missing or unknown role claim"),
        (_claims(role="root"), "missing or unknown role claim"),
        (_claims(role="ADMIN"), "missing or unknown role claim"),
    ],
)
def test_claims_that_do_not_check_out_fail(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(JwtError, match=f"^{reason}$"):
        _verifier(Clock()).verify(_hs(claims))


def test_infinite_or_nan_exp_fails() -> None:
    # PyJWT parses NaN and Infinity; hand-made, as no encoder writes them.
    for value in ("NaN", "Infinity"):
        header = pyjwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
        body = json.dumps(_claims()).replace(str(NOW + 300), value).encode()
        signing_input = header + b"." + pyjwt.utils.base64url_encode(body)
        signature = pyjwt.algorithms.HMACAlgorithm(pyjwt.algorithms.HMACAlgorithm.SHA256).sign(
            signing_input, SECRET.encode()
        )
        token = (signing_input + b"." + pyjwt.utils.base64url_encode(signature)).decode()
        with pytest.raises(JwtError, match="malformed time claim"):
            _verifier(Clock()).verify(token)


def test_the_leeway_admits_small_skew_only() -> None:
    verifier = _verifier(Clock(), leeway="10s")
    assert verifier.verify(_hs(_claims(exp=NOW - 9, nbf=NOW + 9))).project == "billing"


def test_claim_names_are_configurable() -> None:
    token = _hs(_claims(project=None, role=None, tenant="ops", perm="admin"))
    found = _verifier(Clock(), project_claim="tenant", role_claim="perm").verify(token)
    assert (found.project, found.role) == ("ops", Role.ADMIN)


def test_iss_and_aud_are_not_required_when_not_configured() -> None:
    found = _verifier(Clock(), issuer=None, audience=None).verify(_hs(_claims(iss=None, aud="anything")))
    assert found.project == "billing"


def test_a_tampered_signature_or_payload_fails(jwks: str) -> None:
    verifier = _verifier(Clock(), jwks_file=jwks)
    for token in (_hs(_claims()), pyjwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})):
        header, payload, signature = token.split(".")
        flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        with pytest.raises(JwtError, match="bad signature"):
            verifier.verify(f"{header}.{payload}.{flipped}")
        forged = pyjwt.utils.base64url_encode(json.dumps(_claims(role="admin")).encode()).decode()
        with pytest.raises(JwtError, match="bad signature"):
            verifier.verify(f"{header}.{forged}.{signature}")
    with pytest.raises(JwtError, match="bad signature"):
        verifier.verify(_hs(_claims(), key="another secret of forty characters......"))


def test_alg_confusion_an_hs256_token_signed_with_the_rsa_public_key_fails(jwks: str) -> None:
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # PyJWT refuses to sign with a PEM as an HMAC key, so sign by hand, as an attacker would.
    for headers in ({"alg": "HS256", "kid": "rsa-1"}, {"alg": "HS256"}):
        header = pyjwt.utils.base64url_encode(json.dumps({**headers, "typ": "JWT"}).encode())
        signing_input = header + b"." + pyjwt.utils.base64url_encode(json.dumps(_claims(role="admin")).encode())
        signature = pyjwt.algorithms.HMACAlgorithm(pyjwt.algorithms.HMACAlgorithm.SHA256).sign(signing_input, pem)
        token = (signing_input + b"." + pyjwt.utils.base64url_encode(signature)).decode()
        with pytest.raises(JwtError):
            _verifier(Clock(), jwks_file=jwks).verify(token)
        with pytest.raises(JwtError):
            _verifier(Clock(), jwks_file=jwks, hs256_secret=None).verify(token)


def test_an_rs256_token_under_an_es256_kid_fails(jwks: str) -> None:
    token = pyjwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "ec-1"})
    with pytest.raises(JwtError, match="algorithm not allowed for the key"):
        _verifier(Clock(), jwks_file=jwks).verify(token)


def test_alg_none_fails() -> None:
    token = pyjwt.encode(_claims(), None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(JwtError, match="algorithm not allowed"):
        _verifier(Clock()).verify(token)


def test_an_unknown_kid_fails(jwks: str) -> None:
    token = pyjwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-2"})
    with pytest.raises(JwtError, match="unknown kid"):
        _verifier(Clock(), jwks_file=jwks).verify(token)
    with pytest.raises(JwtError, match="no kid"):
        _verifier(Clock(), jwks_file=jwks, hs256_secret=None).verify(_hs(_claims()))


@pytest.mark.parametrize("text", ["", "a.b", "a.b.c", "x" * 9000, "eyJhbGciOiJIUzI1NiJ9.e30"])
def test_garbage_fails(text: str) -> None:
    with pytest.raises(JwtError):
        _verifier(Clock()).verify(text)


def test_a_verified_token_is_cached_until_its_exp() -> None:
    clock = Clock()
    verifier = _verifier(clock, leeway="0s")
    token = _hs(_claims(exp=NOW + 60))
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # the cached identity: no second signature check
    clock.now = NOW + 60
    assert verifier.verify(token) is first
    clock.now = NOW + 61
    with pytest.raises(JwtError, match="expired"):
        verifier.verify(token)


def test_the_cache_is_bounded() -> None:
    verifier = _verifier(Clock(), cache_size=2)
    made = [_hs(_claims(sub=f"s{n}")) for n in range(3)]
    identities = [verifier.verify(t) for t in made]
    assert verifier.verify(made[2]) is identities[2]
    assert verifier.verify(made[0]) is not identities[0]  # evicted, verified again


def test_a_changed_jwks_file_is_reloaded_and_a_removed_key_stops_working(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    _write_jwks(path, _jwk(RSA_KEY.public_key(), "rsa-1"))
    clock = Clock()
    verifier = _verifier(clock, jwks_file=str(path))
    rs = pyjwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    es = pyjwt.encode(_claims(), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    assert verifier.verify(rs).project == "billing"
    _write_jwks(path, _jwk(EC_KEY.public_key(), "ec-1"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(JwtError, match="unknown kid"):  # not looked at again within a second
        verifier.verify(es)
    clock.now += 1.0
    assert verifier.verify(es).project == "billing"
    with pytest.raises(JwtError, match="unknown kid"):
        verifier.verify(rs)  # was cached: the reload cleared it
    path.write_text("{not json")
    clock.now += 1.0
    assert verifier.verify(es).project == "billing"  # a broken file keeps the keys loaded before


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ([{"kty": "RSA", "n": "AQAB", "e": "AQAB"}], "no kid"),
        ([_jwk(RSA_KEY.public_key(), "a"), _jwk(EC_KEY.public_key(), "a")], "twice"),
        ([{**RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True), "kid": "p"}], "private key"),
        ([_jwk(RSA_KEY.public_key(), "a", alg="HS256")], "must be for RS256"),
        ([_jwk(RSA_KEY.public_key(), "a", alg="RS512")], "must be for RS256"),
        ([_jwk(RSA_KEY.public_key(), "a", use="enc")], "not a signing key"),
        ([{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}], "kty must be RSA or EC"),
        ([_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), "a")], "P-256"),
        ([_jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), "a")], "2048"),
    ],
)
def test_a_jwks_file_with_an_unusable_key_is_refused(tmp_path: Path, keys: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(JwksError, match=problem):
        load_jwks(_write_jwks(tmp_path / "k.json", *keys))


@pytest.mark.parametrize("text", ["[]", '{"keys": 1}', "nope"])
def test_a_jwks_file_that_is_not_a_key_set_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(text)
    with pytest.raises(JwksError):
        load_jwks(str(path))
