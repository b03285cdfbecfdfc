#!/usr/bin/env bash
# Creates the Python venv the SDK compatibility test uses (target/sdk-venv) with the official
# Security Center SDK. Idempotent: when the venv already imports the SDK it does nothing.
# Versions are pinned to the ones the API contract was verified against; override with
# SASRELAY_SDK_PACKAGES (space-separated pip requirement specs) to try newer ones.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${SASRELAY_SDK_VENV:-$root/target/sdk-venv}"
packages="${SASRELAY_SDK_PACKAGES:-alibabacloud-sas20181203==10.3.2 alibabacloud-tea-openapi==0.4.6}"
check='import alibabacloud_sas20181203.client, alibabacloud_tea_openapi.utils_models'

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "sdk venv ready: $venv"
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
echo "sdk venv created: $venv"
