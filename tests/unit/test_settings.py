from __future__ import annotations

from pathlib import Path

import pytest

from lanai.config import Settings, load_settings
from lanai.errors import ConfigError


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    (tmp_path / "lanai.toml").write_text('[server]\nport = 9000\nmax_body_bytes = 1000\nlog_level = "debug"\n')
    env = {"LANAI_HOME": str(tmp_path), "LANAI_PORT": "9001", "LANAI_PROVIDERS": "cuda, cpu", "OTHER": "x"}
    settings = load_settings(environ=env, cli={"port": 9002, "host": None})
    assert settings.home == tmp_path
    assert settings.port == 9002  # CLI beats env beats file
    assert settings.max_body_bytes == 1000  # from the file
    assert settings.providers == ("cuda", "cpu")
    assert settings.host == Settings().host  # None on the CLI means "not given"


def test_explicit_config_file_and_errors(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text("access_log = true\nshutdown_timeout = 2.5\n")
    settings = load_settings(config, environ={})
    assert settings.access_log is True and settings.shutdown_timeout == 2.5
    config.write_text("port = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config, environ={})
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(environ={}, cli={"prot": 1})
    with pytest.raises(ConfigError, match="not a valid int"):
        load_settings(environ={"LANAI_PORT": "eighty"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_litert_delegates_come_from_the_environment_as_a_list(tmp_path: Path) -> None:
    env = {"LANAI_HOME": str(tmp_path), "LANAI_LITERT_DELEGATES": "libedgetpu.so.1, libother.so"}
    assert load_settings(environ=env).litert_delegates == ("libedgetpu.so.1", "libother.so")
    assert load_settings(environ={"LANAI_HOME": str(tmp_path)}).litert_delegates == ()


def test_the_stores_lanai_toml_is_read_when_only_the_environment_names_the_store(tmp_path: Path) -> None:
    """`lanai serve` passes every flag, unset ones as None: that must not hide LANAI_HOME's lanai.toml (the
    systemd unit names the store only through LANAI_HOME). Found when on-demand policies were ignored."""
    (tmp_path / "lanai.toml").write_text('[server]\nload_models = "demand"\n', encoding="utf-8")
    settings = load_settings(cli={"home": None, "port": None}, environ={"LANAI_HOME": str(tmp_path)})
    assert settings.config_file == tmp_path / "lanai.toml" and settings.load_models == "demand"


def test_settings_at_the_top_level_sit_beside_the_models_and_follow_tables(tmp_path: Path) -> None:
    """Without a [server] table the file's top-level keys are settings; [models.NAME] and [[follow]] are
    read by their own readers, not refused as unknown settings."""
    config = tmp_path / "lanai.toml"
    config.write_text(
        'keep_alive = "2m"\n\n[models.vision]\nload = "demand"\n\n'
        '[[follow]]\nmodel = "vision"\nreference = "registry.lan/vision:stable"\n',
        encoding="utf-8",
    )
    assert load_settings(config, environ={}).keep_alive == "2m"
    config.write_text('[models.vision]\nload = "demand"\n', encoding="utf-8")
    assert load_settings(config, environ={}).keep_alive == Settings().keep_alive
    config.write_text('keep_alives = "2m"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting 'keep_alives'"):
        load_settings(config, environ={})
