"""Where the store is (README.md, Configuration): a mistyped store is an error, not a new empty
database; bad settings fail every command at start, in one line naming where they came from.

Real SQLite files in tmp_path, the real CLI through typer's CliRunner.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldchain.cli import app
from coldchain.errors import ConfigError, StoreError
from coldchain.store import open_store

CREATE = ["shipment", "create", "S-1", "--product", "cart-ln2", "--logger", "LG-1"]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the CLI in tmp_path with no settings but the ones a test sets."""
    for variable in (
        "COLDCHAIN_CONFIG",
        "COLDCHAIN_STORE",
        "COLDCHAIN_BROKER",
        "COLDCHAIN_PRODUCTS",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        if code:
            assert result.exception is None or isinstance(result.exception, SystemExit)
            assert "Traceback" not in result.output
            assert len(result.output.strip().splitlines()) == 1, result.output
        return result.output

    return invoke


def test_store_in_a_folder_that_does_not_exist_is_an_error_and_creates_nothing(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    deep = tmp_path / "nonexistent" / "deep"
    monkeypatch.setenv("COLDCHAIN_STORE", f"sqlite:///{deep}/x.db")
    out = run(*CREATE, code=2)
    assert f"store folder {deep} does not exist; create it or fix COLDCHAIN_STORE" in out
    assert not (tmp_path / "nonexistent").exists()


def test_store_folder_named_in_the_config_file_is_reported_as_the_files_setting(
    run, tmp_path: Path
):
    (tmp_path / "coldchain.toml").write_text('[store]\nurl = "sqlite:///nowhere/x.db"\n')
    out = run("shipment", "list", code=2)
    assert (
        "store folder nowhere does not exist; create it or fix [store] url in coldchain.toml" in out
    )


@pytest.mark.parametrize(
    "args",
    [
        ["shipment", "list"],
        ["alerts", "list"],
        ["dead-letters", "list"],
        ["import", "readings.csv", "--shipment", "S-1"],  # needs a shipment, so a store
    ],
)
def test_read_only_command_on_a_missing_store_file_fails_and_creates_no_file(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args
):
    db = tmp_path / "typo.db"
    (tmp_path / "readings.csv").write_text("ts,temp_c\n2026-11-26T00:00:00Z,5\n")
    monkeypatch.setenv("COLDCHAIN_STORE", f"sqlite:///{db}")
    out = run(*args, code=2)
    assert f"store file {db} does not exist" in out
    assert "fix COLDCHAIN_STORE" in out
    assert not db.exists()


def test_creating_command_creates_the_store_file_in_an_existing_folder(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    db = tmp_path / "new.db"
    monkeypatch.setenv("COLDCHAIN_STORE", f"sqlite:///{db}")
    run(*CREATE)
    assert db.is_file()
    assert "S-1" in run("shipment", "list")


def test_default_store_creates_var_only_for_a_command_that_creates_data(run, tmp_path: Path):
    assert "store file var/coldchain.db does not exist" in run("shipment", "list", code=2)
    assert not (tmp_path / "var").exists()
    run(*CREATE)
    assert (tmp_path / "var" / "coldchain.db").is_file()


def test_store_folder_that_cannot_hold_files_gives_one_line(run, monkeypatch):
    # /proc refuses new files even to root: an unwritable folder on any machine
    monkeypatch.setenv("COLDCHAIN_STORE", "sqlite:////proc/coldchain-test.db")
    out = run(*CREATE, code=2)
    assert "/proc" in out
    assert "cannot open SQLite database" in out or "not writable" in out


def test_read_only_store_folder_gives_one_line(tmp_path: Path):
    # A real process without write access. Root writes anywhere, so as root (CI) the
    # command runs as the unprivileged user "nobody", in a folder that user may read.
    base = Path(tempfile.mkdtemp(prefix="coldchain-ro-"))
    try:
        base.chmod(0o755)
        folder = base / "ro"
        folder.mkdir()
        open_store(f"sqlite:///{folder}/x.db").close()
        folder.chmod(0o555)
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        prefix = as_user if os.geteuid() == 0 else []
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
        env["COLDCHAIN_STORE"] = f"sqlite:///{folder}/x.db"
        proc = subprocess.run(
            [*prefix, str(Path(sys.executable).parent / "coldchain"), *CREATE],
            cwd=base, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"store folder {folder} is not writable" in proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert len((proc.stdout + proc.stderr).strip().splitlines()) == 1
    finally:
        (base / "ro").chmod(0o755)
        shutil.rmtree(base)


def test_a_file_that_is_not_a_store_gives_one_line(run, tmp_path: Path, monkeypatch):
    notes = tmp_path / "notes.db"
    notes.write_text("these are my notes, not a database\n" * 100)
    monkeypatch.setenv("COLDCHAIN_STORE", f"sqlite:///{notes}")
    out = run("shipment", "list", code=2)
    assert f"cannot open SQLite database '{notes}': file is not a database" in out


def test_open_store_refuses_missing_folder_and_missing_file_without_creating(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"store folder .* does not exist"):
        open_store(f"sqlite:///{tmp_path}/a/b/x.db")
    assert not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match=r"store file .* does not exist"):
        open_store(f"sqlite:///{tmp_path}/x.db", create=False)
    assert not (tmp_path / "x.db").exists()
    open_store(f"sqlite:///{tmp_path}/x.db").close()
    open_store(f"sqlite:///{tmp_path}/x.db", create=False).close()


def test_open_store_refuses_a_folder_as_the_store_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"cannot open SQLite database .*: it is a folder"):
        open_store(f"sqlite:///{tmp_path}")


def test_write_to_a_store_that_became_read_only_is_a_store_error(tmp_path: Path):
    store = open_store(f"sqlite:///{tmp_path}/x.db")
    store._db.execute("PRAGMA query_only = ON")  # type: ignore[attr-defined]  # read-only mode
    try:
        with pytest.raises(StoreError, match="attempt to write a readonly database"):
            store.set_logger_calibration("LG-1", 0.5)
    finally:
        store.close()


# -- every command validates the settings at start ------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[broker]\nurl = "mqtt//h"\n', "coldchain.toml: [broker] url: "),
        ('[products]\ndirs = ["gone"]\n', "coldchain.toml: [products] dirs: profile folder gone"),
        ('[alerts]\nroutes = "gone.toml"\n', "coldchain.toml: [alerts] routes: alert routing file"),
        ('[store]\nurl = "mysql://h/db"\n', "coldchain.toml: [store] url: unsupported store URL"),
    ],
)
@pytest.mark.parametrize("args", [["shipment", "list"], ["alerts", "list"], CREATE])
def test_every_command_fails_at_start_on_a_bad_setting_in_the_file(
    run, tmp_path: Path, toml, message, args
):
    open_store(f"sqlite:///{tmp_path}/var.db").close()
    (tmp_path / "coldchain.toml").write_text(toml)
    assert message in run(*args, code=2)


def test_store_url_from_the_environment_is_reported_as_coldchain_store(run, monkeypatch):
    monkeypatch.setenv("COLDCHAIN_STORE", "mysql://h/db")
    assert "error: COLDCHAIN_STORE: unsupported store URL 'mysql://h/db'" in run(
        "shipment", "list", code=2
    )
