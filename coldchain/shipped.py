"""Where the configuration shipped with coldchain lives, in a clone and when installed.

``coldchain/_configs`` is a link to the repository's ``configs/`` folder; a built
wheel holds a copy of the files instead, so one path works for both.
"""

from pathlib import Path

SHIPPED_CONFIGS = Path(__file__).resolve().parent / "_configs"
"""Shipped product profiles (``products/``), customs packs (``customs/``), alert routes
(``alerts.toml``) and the Mosquitto configuration (``mosquitto/``)."""
