"""Settings and product profiles (docs/EVALUATION.md, README.md, docs/BROKER.md): validated at
start, errors name
the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldchain.config import load_settings
from coldchain.errors import ConfigError
from coldchain.profiles import SHIPPED_PRODUCTS_DIR, load_profiles, parse_profile

GOOD = b"""
id = "mine"
name = "My product"
max_gap_min = 10
[[alarms]]
id = "hot"
above_c = 8.0
delay_min = 10
"""


def test_shipped_profiles_all_load_with_spec_limits():
    profiles = load_profiles(SHIPPED_PRODUCTS_DIR)
    assert set(profiles.profiles) >= {"cart-ln2", "dry-ice", "frozen", "vaccine-2-8", "crt-15-25"}
    cart = profiles.get("cart-ln2")
    assert (cart.mkt, cart.max_gap_min, cart.limit_keys()[0]) == (False, 15, ("above", -150.0))
    vaccine = profiles.get("vaccine-2-8")
    assert {(a.id, a.direction, a.limit_c) for a in vaccine.alarms} >= {
        ("high-single", "above", 8.0),
        ("low-single", "below", 2.0),
        ("freeze", "below", 0.0),
    }
    assert [(b.direction, b.limit_c) for b in vaccine.budget] == [("above", 8.0)]


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (GOOD.replace(b"above_c = 8.0", b'above_c = "warm"'), "alarms[0].above_c", "valid number"),
        (GOOD.replace(b"delay_min = 10", b""), "alarms[0]", "set delay_min and/or cumulative_min"),
        (
            GOOD.replace(b"above_c = 8.0", b"above_c = 8.0\nbelow_c = 2.0"),
            "alarms[0]",
            "exactly one of above_c or below_c",
        ),
        (GOOD.replace(b"max_gap_min = 10", b"max_gap_min = 0"), "max_gap_min", "greater than 0"),
        (GOOD.replace(b'name = "My product"', b""), "name", "Field required"),
        (b"colour = 'blue'\n" + GOOD, "colour", "Extra inputs are not permitted"),
        (
            GOOD + b'[[alarms]]\nid = "hot"\nbelow_c = 1.0\ndelay_min = 5\n',
            "(file)",
            "duplicate alarm/budget id 'hot'",
        ),
    ],
)
def test_parse_profile_error_names_file_field_and_reason(text, field, reason):
    with pytest.raises(ConfigError) as info:
        parse_profile(text, source="mine.toml")
    message = str(info.value)
    assert message.startswith(f"mine.toml: {field}: "), message
    assert reason in message


def test_parse_profile_refuses_bad_toml():
    with pytest.raises(ConfigError, match=r"^x\.toml: not valid TOML"):
        parse_profile(b"id = ", source="x.toml")


def test_user_profiles_folder_adds_and_overrides(tmp_path: Path):
    (tmp_path / "mine.toml").write_bytes(GOOD)
    (tmp_path / "frozen.toml").write_bytes(GOOD.replace(b'id = "mine"', b'id = "frozen"'))
    settings = load_settings(environ={"COLDCHAIN_PRODUCTS": str(tmp_path)})
    profiles = settings.load_profiles()
    assert profiles.get("mine").max_gap_min == 10
    assert profiles.get("frozen").name == "My product"  # the user's replaces the shipped one
    assert "cart-ln2" in profiles


def test_settings_environment_overrides_file(tmp_path: Path):
    config = tmp_path / "coldchain.toml"
    config.write_text('[store]\nurl = "sqlite:///a.db"\n[health]\nsilence_min = 10\n')
    s = load_settings(
        config,
        environ={"COLDCHAIN_STORE": "sqlite:///b.db", "COLDCHAIN_BROKER": "mqtt://127.0.0.1:1884"},
    )
    assert (s.store.url, s.broker.url, s.health.silence_min) == (
        "sqlite:///b.db",
        "mqtt://127.0.0.1:1884",
        10,
    )
    assert load_settings(environ={"COLDCHAIN_CONFIG": str(config)}).store.url == "sqlite:///a.db"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("[health]\nsilence_min = -1\n", "health.silence_min", "greater than 0"),
        ("[ingest]\nbatch_max = 'many'\n", "ingest.batch_max", "valid integer"),
        ("[stor]\nurl = 'x'\n", "stor", "Extra inputs are not permitted"),
    ],
)
def test_settings_error_names_file_field_and_reason(tmp_path: Path, text, field, reason):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    assert str(info.value).startswith(f"{config}: {field}: ")
    assert reason in str(info.value)


def test_settings_missing_file_and_bad_toml(tmp_path: Path):
    with pytest.raises(ConfigError, match="configuration file does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[store\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})
