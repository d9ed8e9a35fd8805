"""The `encryption` section: the keyring from the file or TASQUES_ENCRYPTION_*, and key material never shown."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tasques.config import ConfigError, load_config
from tasques.store.sealing import Sealer, key_id_of

K1 = base64.b64encode(os.urandom(32)).decode()
K2 = base64.b64encode(os.urandom(32)).decode()


def test_no_keys_by_default_means_no_sealer() -> None:
    config = load_config(None, environ={})
    assert config.encryption.keys == []
    assert Sealer.from_config(config.encryption) is None


def test_keys_and_current_come_from_the_environment() -> None:
    env = {
        "TASQUES_ENCRYPTION_KEYS": json.dumps([{"id": "k1", "key": K1}, {"id": "k2", "key": K2}]),
        "TASQUES_ENCRYPTION_CURRENT": "k1",
    }
    config = load_config(None, environ=env)
    assert [k.id for k in config.encryption.keys] == ["k1", "k2"]
    sealer = Sealer.from_config(config.encryption)
    assert sealer is not None
    assert key_id_of(sealer.seal("x", b"aad")) == "k1"
    # Without `current`, the last listed key seals.
    del env["TASQUES_ENCRYPTION_CURRENT"]
    latest = Sealer.from_config(load_config(None, environ=env).encryption)
    assert latest is not None
    assert latest.current == "k2"
    assert latest.unseal(sealer.seal("x", b"aad"), b"aad") == "x"


def test_keys_come_from_the_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(f"encryption:\n  keys:\n    - id: k1\n      key: {K1}\n")
    config = load_config(f, environ={})
    assert config.encryption.keys[0].material() == base64.b64decode(K1)


def test_key_material_is_never_in_the_configs_repr_or_dump() -> None:
    config = load_config(None, environ={"TASQUES_ENCRYPTION_KEYS": json.dumps([{"id": "k1", "key": K1}])})
    for shown in (repr(config), str(config), config.model_dump_json(), json.dumps(config.model_dump(mode="json"))):
        assert K1 not in shown
        assert "k1" in shown


@pytest.mark.parametrize(
    ("keys", "current", "problem"),
    [
        ([{"id": "k1", "key": base64.b64encode(b"too short").decode()}], None, "must be base64 of 32 bytes, not 9"),
        ([{"id": "k1", "key": "not base64 at all!"}], None, "not valid base64"),
        ([{"id": "k1", "key": K1}, {"id": "k1", "key": K2}], None, "listed once"),
        ([{"id": "k1", "key": K1}], "k9", "'k9' is not the id of a listed key"),
        ([{"id": "has space", "key": K1}], None, "encryption.keys.0.id"),
    ],
)
def test_a_bad_keyring_names_the_setting_and_never_echoes_a_key(
    keys: list[dict[str, str]], current: str | None, problem: str
) -> None:
    env = {"TASQUES_ENCRYPTION_KEYS": json.dumps(keys)}
    if current is not None:
        env["TASQUES_ENCRYPTION_CURRENT"] = current
    with pytest.raises(ConfigError, match=problem) as raised:
        load_config(None, environ=env)
    for key in keys:
        assert key["key"] not in str(raised.value)
