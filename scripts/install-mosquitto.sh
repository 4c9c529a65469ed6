#!/usr/bin/env bash
# Makes sure the `mosquitto` broker binary is on this machine: the integration
# tests start their own broker from it (tests/conftest.py, `mosquitto_url`).
# Safe to run repeatedly; does nothing when mosquitto is already installed.
set -euo pipefail

# Debian puts the broker in /usr/sbin, which is not on a normal user's PATH.
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  cat >&2 <<'MSG'
mosquitto is not installed, and the integration tests need it.
Install it, then run this again:
  Debian/Ubuntu:  sudo apt-get install mosquitto
  macOS:          brew install mosquitto
  (or run this script as root: sudo scripts/install-mosquitto.sh)
MSG
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "mosquitto is not installed and this is not a Debian-like system:" \
    "install the 'mosquitto' package with your package manager." >&2
  exit 1
fi

# CI runs with no stdin: never let debconf ask a question.
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends mosquitto
# The package may also start a system broker on port 1883. The tests do not
# use it (each session starts its own broker on a free port), so it is left as is.
