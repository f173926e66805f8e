"""The agent's settings: defaults, parsing, and clear errors at start."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig
from agent.errors import ConfigError


def test_defaults() -> None:
    config = AgentConfig.from_env({})
    assert config == AgentConfig()
    assert config.port == 9000
    assert config.watch_interval_s == 0.25
    assert config.master_title == r"^gunicorn: master \["


def test_values_are_read() -> None:
    config = AgentConfig.from_env(
        {
            "OBSERVASTACK_AGENT_PORT": "9100",
            "OBSERVASTACK_AGENT_HOST": "127.0.0.1",
            "OBSERVASTACK_AGENT_WATCH_INTERVAL_S": "0.1",
            "OBSERVASTACK_AGENT_DISCOVERY_TIMEOUT_S": "5",
            "OBSERVASTACK_AGENT_MASTER_TITLE": "^gunicorn: master \\[sut\\]",
            "OBSERVASTACK_AGENT_HISTORY_SIZE": "7",
            "OBSERVASTACK_AGENT_LOG_LEVEL": "debug",
            "OBSERVASTACK_AGENT_PORT_UNRELATED": "x",
        }
    )
    assert (config.port, config.host, config.watch_interval_s) == (9100, "127.0.0.1", 0.1)
    assert (config.discovery_timeout_s, config.history_size) == (5.0, 7)
    assert config.master_title == "^gunicorn: master \\[sut\\]"
    assert config.log_level == "DEBUG"


def test_blank_means_default() -> None:
    assert AgentConfig.from_env({"OBSERVASTACK_AGENT_PORT": "  "}).port == 9000


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "nine", "OBSERVASTACK_AGENT_PORT='nine' is not a valid int"),
        ("PORT", "70000", "must be between 1 and 65535"),
        ("WATCH_INTERVAL_S", "1", "OBSERVASTACK_AGENT_WATCH_INTERVAL_S='1': must be between"),
        ("WATCH_INTERVAL_S", "0", "must be between 0.01 and 0.5"),
        ("DISCOVERY_TIMEOUT_S", "-1", "must be between"),
        ("MASTER_TITLE", "gunicorn: master [", "not a valid regular expression"),
        ("HISTORY_SIZE", "0", "must be between 1 and 10000"),
        ("LOG_LEVEL", "LOUD", "must be one of"),
    ],
)
def test_bad_values_fail_with_the_variable_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        AgentConfig.from_env({f"OBSERVASTACK_AGENT_{name}": value})
    assert message in str(info.value)
    assert "unset it to use" in str(info.value)
