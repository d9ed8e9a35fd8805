"""Leader and stop settings are checked at start-up, with an error naming the setting."""

from __future__ import annotations

import pytest

from tasques.cli import main
from tasques.config import ConfigError, load_config


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TASQUES_LEADER_RENEW_EVERY": "5s"}, "leader.renew_every"),
        ({"TASQUES_LEADER_LEASE": "2s", "TASQUES_LEADER_RENEW_EVERY": "3s"}, "leader.renew_every"),
        ({"TASQUES_LEADER_LEASE": "0s"}, "leader.lease"),
        ({"TASQUES_LEADER_RENEW_EVERY": "0s"}, "leader.renew_every"),
        ({"TASQUES_SERVER_SHUTDOWN_GRACE": "0s"}, "server.shutdown_grace"),
    ],
)
def test_bad_leader_and_stop_settings_are_refused_naming_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, environ=env)


def test_serve_refuses_to_start_with_a_renewal_slower_than_the_lease(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASQUES_LEADER_LEASE", "1s")
    monkeypatch.setenv("TASQUES_LEADER_RENEW_EVERY", "1s")
    assert main(["serve"]) == 2
    assert "leader.renew_every" in capsys.readouterr().err
