import dataclasses
import tomllib
from pathlib import Path

import pytest

from experiments.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from experiments.errors import ConfigError


def test_defaults_come_from_default_toml():
    settings = load_settings({})
    assert settings == Settings()
    assert settings.database_url.startswith("sqlite:///")


def test_every_setting_is_documented_in_default_toml():
    documented = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
    fields = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert set(documented) == set(fields)
    assert documented == fields


def test_file_then_environment_override(tmp_path: Path):
    config = tmp_path / "xp.toml"
    config.write_text('port = 9000\nlog_level = "DEBUG"\n')
    settings = load_settings({"XP_CONFIG": str(config), "XP_PORT": "9100"})
    assert settings.port == 9100
    assert settings.log_level == "DEBUG"


def test_unknown_key_in_file_names_it(tmp_path: Path):
    config = tmp_path / "xp.toml"
    config.write_text("prot = 9000\n")
    with pytest.raises(ConfigError, match="unknown key 'prot'"):
        load_settings({"XP_CONFIG": str(config)})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"XP_PORT": "eighty"}, "XP_PORT: port = 'eighty': must be int"),
        ({"XP_HOLDOUT_FRACTION": "1.5"}, "holdout_fraction = '1.5': must be >= 0 and < 1"),
        ({"XP_CORRECTION": "tukey"}, "correction = 'tukey': must be one of"),
        ({"XP_DATABASE_URL": "mysql://x"}, "must be a sqlite:/// or postgresql:// URL"),
    ],
    ids=["not-int", "out-of-range", "unknown-choice", "bad-url"],
)
def test_bad_values_stop_with_a_message_naming_them(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(env)


def test_bad_value_in_file_names_the_file(tmp_path: Path):
    config = tmp_path / "xp.toml"
    config.write_text("workers = 0\n")
    with pytest.raises(ConfigError, match=r"xp.toml: workers = 0: must be > 0"):
        load_settings({"XP_CONFIG": str(config)})


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({"XP_CONFIG": str(tmp_path / "nope.toml")})


def test_secret_key_is_generated_once(tmp_path: Path):
    settings = Settings(instance_path=str(tmp_path))
    first = settings.resolved_secret_key()
    assert len(first) == 64
    assert settings.resolved_secret_key() == first
    assert Settings(secret_key="given").resolved_secret_key() == "given"
