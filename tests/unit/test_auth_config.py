"""The `auth:` section: defaults, bounds, and every setting settable from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tasques.config import ConfigError, load_config, render_defaults
from tasques.domain.project import Role


def test_auth_is_off_by_default() -> None:
    auth = load_config(None, environ={}).auth
    assert auth.enabled is False
    assert auth.admin_token is None
    assert auth.token_cache_ttl == timedelta(seconds=2)
    assert (auth.basic_auth_project, auth.basic_auth_role) == ("default", Role.ADMIN)
    assert auth.default_max_outstanding_tasks == 1000
    assert (auth.jwt.project_claim, auth.jwt.role_claim) == ("project", "role")
    assert not auth.jwt.configured


def test_every_auth_setting_is_settable_from_the_environment(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    env = {
        "TASQUES_AUTH_ENABLED": "true",
        "TASQUES_AUTH_ADMIN_TOKEN": "#" + "a" * 40,
        "TASQUES_AUTH_TOKEN_CACHE_TTL": "500ms",
        "TASQUES_AUTH_RATE_PER_SECOND": "12.5",
        "TASQUES_AUTH_BURST": "30",
        "TASQUES_AUTH_RATE_LIMIT_KEYS": "500",
        "TASQUES_AUTH_BASIC_AUTH_PROJECT": "ops",
        "TASQUES_AUTH_BASIC_AUTH_ROLE": " viewer ",
        "TASQUES_AUTH_DEFAULT_MAX_OUTSTANDING_TASKS": "",
        "TASQUES_AUTH_JWT_HS256_SECRET": "s" * 32,
        "TASQUES_AUTH_JWT_JWKS_FILE": str(jwks),
        "TASQUES_AUTH_JWT_ISSUER": "https://idp",
        "TASQUES_AUTH_JWT_AUDIENCE": "tasques",
        "TASQUES_AUTH_JWT_LEEWAY": "0s",
        "TASQUES_AUTH_JWT_PROJECT_CLAIM": "tenant",
        "TASQUES_AUTH_JWT_ROLE_CLAIM": "https://tasques/role",
        "TASQUES_AUTH_JWT_CACHE_SIZE": "7",
    }
    auth = load_config(None, environ=env).auth
    assert auth.enabled is True
    assert auth.admin_token is not None
    assert auth.admin_token.get_secret_value() == "#" + "a" * 40
    assert auth.token_cache_ttl == timedelta(milliseconds=500)
    assert (auth.rate_per_second, auth.burst, auth.rate_limit_keys) == (12.5, 30, 500)
    assert (auth.basic_auth_project, auth.basic_auth_role) == ("ops", Role.VIEWER)
    assert auth.default_max_outstanding_tasks is None
    jwt = auth.jwt
    assert jwt.hs256_secret is not None
    assert jwt.hs256_secret.get_secret_value() == "s" * 32
    assert (jwt.jwks_file, jwt.issuer, jwt.audience) == (str(jwks), "https://idp", "tasques")
    assert (jwt.leeway, jwt.project_claim, jwt.role_claim, jwt.cache_size) == (
        timedelta(0),
        "tenant",
        "https://tasques/role",
        7,
    )


def test_secrets_are_never_shown() -> None:
    config = load_config(
        None, environ={"TASQUES_AUTH_ADMIN_TOKEN": "t" * 40, "TASQUES_AUTH_JWT_HS256_SECRET": "j" * 40}
    )
    assert "t" * 40 not in repr(config)
    assert "j" * 40 not in repr(config)
    assert "t" * 40 not in config.model_dump_json()


@pytest.mark.parametrize(
    ("key", "value", "setting"),
    [
        ("TASQUES_AUTH_ADMIN_TOKEN", "short", "auth.admin_token"),
        ("TASQUES_AUTH_JWT_HS256_SECRET", "s" * 31, "auth.jwt.hs256_secret"),
        ("TASQUES_AUTH_TOKEN_CACHE_TTL", "2m", "auth.token_cache_ttl"),
        ("TASQUES_AUTH_TOKEN_CACHE_TTL", "-1s", "auth.token_cache_ttl"),
        ("TASQUES_AUTH_RATE_PER_SECOND", "0", "auth.rate_per_second"),
        ("TASQUES_AUTH_RATE_PER_SECOND", "inf", "auth.rate_per_second"),
        ("TASQUES_AUTH_BURST", "0", "auth.burst"),
        ("TASQUES_AUTH_BURST", "1.5", "auth.burst"),
        ("TASQUES_AUTH_BASIC_AUTH_PROJECT", "Ops/Team", "auth.basic_auth_project"),
        ("TASQUES_AUTH_BASIC_AUTH_ROLE", "root", "auth.basic_auth_role"),
        ("TASQUES_AUTH_DEFAULT_MAX_OUTSTANDING_TASKS", "0", "auth.default_max_outstanding_tasks"),
        ("TASQUES_AUTH_JWT_LEEWAY", "10m", "auth.jwt.leeway"),
        ("TASQUES_AUTH_JWT_PROJECT_CLAIM", "", "auth.jwt.project_claim"),
        ("TASQUES_AUTH_ENABLED", "maybe", "auth.enabled"),
    ],
)
def test_bad_auth_settings_name_the_setting(key: str, value: str, setting: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, environ={key: value})
    assert setting in str(e.value)
    assert value not in str(e.value) or len(value) < 8  # a long secret is never echoed


def test_a_jwks_file_needs_an_issuer_and_an_audience(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("auth:\n  jwt:\n    jwks_file: /etc/tasques/jwks.json\n    issuer: https://idp\n")
    with pytest.raises(ConfigError, match=r"auth\.jwt.*audience"):
        load_config(f, environ={})


def test_the_shipped_defaults_document_the_auth_section() -> None:
    rendered = render_defaults()
    assert "\nauth:\n  # require a token" in rendered
    assert "\n  jwt:\n" in rendered
