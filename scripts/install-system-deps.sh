#!/usr/bin/env bash
# Makes sure the system programs the tests need are on this machine:
#   mosquitto            the integration tests start their own broker from it
#   pdftoppm, pdftotext  (poppler-utils) the dossier tests render every PDF page
#                        to PNG and read its text
# Safe to run repeatedly; does nothing when everything is installed. As root on
# a Debian-like system it installs what is missing with apt-get; otherwise it
# says what to install.
set -euo pipefail

have() {
  # Debian puts mosquitto in /usr/sbin, which is not on a normal user's PATH.
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]
}

missing=()
have mosquitto || missing+=(mosquitto)
{ have pdftoppm && have pdftotext; } || missing+=(poppler-utils)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  cat >&2 <<MSG
The tests need these system packages, which are not installed: ${missing[*]}
Install them, then run this again:
  Debian/Ubuntu:  sudo apt-get install ${missing[*]}
  macOS:          brew install ${missing[*]/poppler-utils/poppler}
  (or run this script as root on Debian/Ubuntu: sudo scripts/install-system-deps.sh)
MSG
  exit 1
fi

# CI runs with no stdin: never let debconf ask a question.
export DEBIAN_FRONTEND=noninteractive
echo "==> installing ${missing[*]} with apt-get"
log=$(mktemp)
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "apt-get could not install: ${missing[*]}" >&2
  exit 1
fi
rm -f "$log"
# The mosquitto package may also start a system broker on port 1883. The tests do
# not use it (each session starts its own broker on a free port), so it is left as is.
