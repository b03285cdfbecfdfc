#!/usr/bin/env bash
# Races sasrelay against Alertmanager into one counting webhook receiver (issue 13, build
# point 6); benches/race.rs does the work and prints the tables.
#
#   bash benches/race.sh [rounds] [more arguments for benches/race.rs]
#   bash benches/race.sh 1 --n 1000          # one quick round, N = 1,000 only
#   bash benches/race.sh 3 --n 1000,10000,50000 --slow-n 2000
#
# Installs Debian's prometheus-alertmanager (0.25) when neither `alertmanager` nor
# `prometheus-alertmanager` is on PATH; when it cannot, says so and races sasrelay alone (the
# tables then have no Alertmanager rows).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-3}"
if [[ $# -gt 0 ]]; then shift; fi

install_alertmanager() {
    command -v apt-get >/dev/null || { echo "race: no apt-get here"; return 1; }
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "race: not root and no sudo"; return 1; }
        sudo=(sudo -n)
    fi
    echo "race: installing Debian's prometheus-alertmanager (apt-get)…"
    "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus-alertmanager
}

# Debian names the binary prometheus-alertmanager; upstream's tarball names it alertmanager.
find_alertmanager() {
    command -v alertmanager || command -v prometheus-alertmanager || true
}

am="$(find_alertmanager)"
if [[ -z "$am" ]]; then
    install_alertmanager || true
    am="$(find_alertmanager)"
fi
args=()
if [[ -n "$am" ]]; then
    echo "race: $("$am" --version 2>&1 | head -n 1)"
    args=(--alertmanager "$am")
else
    echo "race: Alertmanager is not installed and could not be installed (Debian's prometheus-alertmanager needs root and apt-get)."
    echo "race: racing sasrelay alone; install it and run this again for the comparison."
    args=(--no-alertmanager)
fi
# The Debian package would start its own Alertmanager on :9093 where services run; the race
# starts its own on a free port either way.

exec cargo bench --bench race -- --rounds "$rounds" "${args[@]}" "$@"
