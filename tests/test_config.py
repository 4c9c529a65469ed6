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
    (tmp_path / "frozen.toml").write_bytes(
        GOOD.replace(b'id = "mine"', b'id = "frozen"\noverrides = "frozen"')
    )
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
        ("[health]\nsilence_min = -1\n", "[health] silence_min", "greater than 0"),
        ("[ingest]\nbatch_max = 'many'\n", "[ingest] batch_max", "valid integer"),
        ("[stor]\nurl = 'x'\n", "[stor]", "Extra inputs are not permitted"),
        ("[products]\ndirs = [1]\n", "[products] dirs[0]", "valid path"),
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


# -- contradictory limits, shipped ids (a user profile must say it replaces one) ------------

TWO_SIDED = b"""
id = "mine"
name = "My product"
max_gap_min = 10
[[alarms]]
id = "hot"
above_c = 2.0
delay_min = 10
[[alarms]]
id = "cold"
below_c = 8.0
delay_min = 10
"""


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (TWO_SIDED, "alarms[1].below_c", "8.0 is above alarms[0].above_c 2.0: every temperature"),
        (
            TWO_SIDED.replace(b"below_c = 8.0", b"below_c = 2.0"),
            "alarms[1].below_c",
            "2.0 equals alarms[0].above_c 2.0",
        ),
        (
            GOOD + b'[[budget]]\nid = "cold-budget"\nbelow_c = 9.0\nallowance_min = 60\n',
            "budget[0].below_c",
            "9.0 is above alarms[0].above_c 8.0",
        ),
    ],
)
def test_profile_with_contradictory_limits_is_refused(text, field, reason):
    with pytest.raises(ConfigError) as info:
        parse_profile(text, source="mine.toml")
    assert str(info.value).startswith(f"mine.toml: {field}: {reason}"), str(info.value)


def test_profile_with_a_range_between_its_limits_is_accepted():
    profile = parse_profile(
        TWO_SIDED.replace(b"above_c = 2.0", b"above_c = 8.0").replace(
            b"below_c = 8.0", b"below_c = 2.0"
        ),
        source="mine.toml",
    )
    assert profile.limit_keys() == (("above", 8.0), ("below", 2.0))


def test_user_profile_reusing_a_shipped_id_is_refused_unless_it_says_overrides(tmp_path: Path):
    (tmp_path / "v.toml").write_bytes(GOOD.replace(b'id = "mine"', b'id = "vaccine-2-8"'))
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"COLDCHAIN_PRODUCTS": str(tmp_path)})
    assert str(info.value).startswith(f"{tmp_path / 'v.toml'}: id: 'vaccine-2-8' is the id of")
    assert 'overrides = "vaccine-2-8"' in str(info.value)
    (tmp_path / "v.toml").write_bytes(
        GOOD.replace(b'id = "mine"', b'id = "vaccine-2-8"\noverrides = "vaccine-2-8"')
    )
    profiles = load_settings(environ={"COLDCHAIN_PRODUCTS": str(tmp_path)}).load_profiles()
    assert profiles.get("vaccine-2-8").name == "My product"


@pytest.mark.parametrize(
    ("files", "bad", "field", "reason"),
    [
        ({"a.toml": GOOD.replace(b'id = "mine"', b'id = "mine"\noverrides = "mine"')},
         "a.toml", "overrides", "there is no shipped profile 'mine' to override"),
        ({"a.toml": GOOD.replace(b'id = "mine"', b'id = "mine"\noverrides = "frozen"')},
         "a.toml", "overrides", "'frozen' must be the profile's own id 'mine'"),
        ({"a.toml": GOOD, "b.toml": GOOD}, "b.toml", "id", "profile id 'mine' is also defined in"),
    ],
)  # fmt: skip
def test_user_profile_override_mistakes_are_refused(tmp_path: Path, files, bad, field, reason):
    for name, text in files.items():
        (tmp_path / name).write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_profiles(SHIPPED_PRODUCTS_DIR, tmp_path)
    assert str(info.value).startswith(f"{tmp_path / bad}: {field}: {reason}"), str(info.value)


# -- everything the settings point at is validated at start, naming its origin ----------------


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ('[store]\nurl = "mysql://db/x"\n', "[store] url", "unsupported store URL 'mysql://db/x'"),
        ('[store]\nurl = "sqlite:///"\n', "[store] url", "names no file"),
        ('[broker]\nurl = "tcp://h:1883"\n', "[broker] url", "unsupported scheme 'tcp'"),
        ('[broker]\nurl = "mqtt://h:99999"\n', "[broker] url", "invalid MQTT broker URL"),
        ('[broker]\nlisten = "1883"\n', "[broker] listen", "'1883' is not HOST:PORT"),
        ('[broker]\nlisten = "127.0.0.1:70000"\n', "[broker] listen", "from 0 to 65535"),
        ('[broker]\nlisten = "127.0.0.1:http"\n', "[broker] listen", "port 'http'"),
        ('[products]\ndirs = ["no-such-folder"]\n', "[products] dirs", "profile folder"),
        ('[alerts]\nroutes = "nope.toml"\n', "[alerts] routes", "alert routing file"),
    ],
)
def test_settings_file_values_are_validated_at_start(tmp_path: Path, text, field, reason):
    config = tmp_path / "coldchain.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    message = str(info.value)
    assert message.startswith(f"{config}: {field}: "), message
    assert reason in message


def test_invalid_routes_file_is_refused_at_start_naming_it(tmp_path: Path):
    routes = tmp_path / "alerts.toml"
    routes.write_text('[[routes]]\nchannels = ["nowhere"]\n')
    config = tmp_path / "coldchain.toml"
    config.write_text('[alerts]\nroutes = "alerts.toml"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={})
    assert str(info.value).startswith(f"{routes}: "), str(info.value)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("COLDCHAIN_STORE", "mysql://db/x", "unsupported store URL"),
        ("COLDCHAIN_BROKER", "tcp://h:1883", "unsupported scheme 'tcp'"),
        ("COLDCHAIN_PRODUCTS", "no-such-folder", "profile folder no-such-folder does not exist"),
    ],
)
def test_settings_from_the_environment_are_named_by_their_variable(
    tmp_path: Path, variable, value, reason
):
    config = tmp_path / "coldchain.toml"
    config.write_text("[health]\nsilence_min = 10\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ={variable: value})
    assert str(info.value).startswith(f"{variable}: {reason}"), str(info.value)


def test_broker_listen_setting_defaults_to_loopback_1883_and_parses_ipv6(tmp_path: Path):
    assert load_settings(environ={}).broker.listen_address == ("127.0.0.1", 1883)
    config = tmp_path / "coldchain.toml"
    config.write_text('[broker]\nlisten = "[::1]:0"\n')
    assert load_settings(config, environ={}).broker.listen_address == ("::1", 0)
