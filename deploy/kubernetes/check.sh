#!/usr/bin/env bash
# Renders both variants with kustomize, deploy/kubernetes (one replica) and
# deploy/kubernetes/ha (two replicas, one leader), and validates each offline: every object
# against the Kubernetes schemas (PyPI kubernetes-validate, strict) and the ServiceMonitor and
# PrometheusRule against the Prometheus Operator's CRD models (PyPI
# cloudcoil-models-prometheus-operator); then the manifests against sasrelay.toml, the README's
# alerts and src/sas/'s RAM actions, and `sasrelay check` on the ConfigMap's config; for ha/
# also the replicas' placement, the Role, the PodDisruptionBudget and [ha] (validate.py says
# what exactly). Both are always checked; exit 0 when all pass, 1 with every problem otherwise.
#
#   deploy/kubernetes/check.sh [SASRELAY_BINARY]     (default: target/debug/sasrelay)
#
# The venv (target/k8s-venv, or SASRELAY_K8S_VENV) is created on first use from PyPI; later
# runs take a few seconds. SASRELAY_K8S_VERSIONS chooses the Kubernetes versions (default
# "1.30.0 1.34.0", ACK's oldest and newest at the time of writing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
binary="${1:-$root/target/debug/sasrelay}"
venv="${SASRELAY_K8S_VENV:-$root/target/k8s-venv}"
packages="kubernetes-validate==1.37.0 cloudcoil-models-prometheus-operator==0.80.1.0"
probe='import kubernetes_validate.utils, cloudcoil.models.prometheus_operator.v1, yaml, tomllib'

fail() {
  echo "deploy/kubernetes/check.sh: $*" >&2
  exit 1
}

command -v kubectl >/dev/null || fail "kubectl not found: it renders the kustomization (kubectl kustomize)"
[ -x "$binary" ] || fail "no sasrelay binary at $binary: build it (cargo build) or pass its path"

if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$probe" 2>/dev/null; }; then
  command -v python3 >/dev/null || fail "python3 (3.11 or later, with venv) not found"
  echo "== creating $venv ($packages)"
  python3 -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086 # the package list is meant to split
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $packages \
    || fail "pip could not install $packages"
  "$venv/bin/python" -c "$probe" || fail "the venv at $venv cannot import what validate.py needs"
fi

rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
status=0
for variant in base ha; do
  if [ "$variant" = base ]; then dir="$here" label=deploy/kubernetes; else dir="$here/$variant" label="deploy/kubernetes/$variant"; fi
  echo "== kubectl kustomize $label"
  if ! kubectl kustomize "$dir" >"$rendered"; then
    echo "deploy/kubernetes/check.sh: kubectl kustomize $dir failed" >&2
    status=1
    continue
  fi
  echo "== validate $label"
  "$venv/bin/python" "$here/validate.py" "$rendered" "$root" "$binary" "$variant" || status=1
done
exit "$status"
