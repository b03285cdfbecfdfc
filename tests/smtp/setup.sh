#!/usr/bin/env bash
# Creates the Python venv the email sink tests use as their SMTP peer (target/smtp-venv) with
# aiosmtpd (the server) and trustme (a throwaway CA and server certificate per test run).
# Idempotent: when the venv already imports both it does nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${SASRELAY_SMTP_VENV:-$root/target/smtp-venv}"
packages="${SASRELAY_SMTP_PACKAGES:-aiosmtpd==1.4.6 trustme==1.2.1}"
check='import aiosmtpd.controller, trustme'

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "smtp venv ready: $venv"
  exit 0
fi

if ! command -v python3 >/dev/null; then
  echo "python3 not found: install python3 with its venv module (Debian: python3-venv)" >&2
  exit 1
fi
python3 -m venv "$venv"
# shellcheck disable=SC2086 # word splitting of the package list is intended
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $packages
"$venv/bin/python" -c "$check"
echo "smtp venv created: $venv"
