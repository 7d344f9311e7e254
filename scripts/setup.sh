#!/usr/bin/env bash
# Prepares a fresh Debian machine for Mycel: Go modules, Podman (with runc),
# a containers.conf that works where crun or the default rlimits fail, and the
# demo image. Idempotent: re-running it changes nothing that already works.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  echo "setup: installing podman and runc"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null
fi
# The e2e fault tests put nodes in network namespaces and cut links with iptables.
if ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then
  echo "setup: installing iptables and iproute2"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables iproute2 >/dev/null
fi
command -v kubectl >/dev/null || { echo "setup: kubectl is not installed; install kubectl (v1.29 or newer) to use the fabric" >&2; }

echo "setup: downloading Go modules"
go mod download

./scripts/build-image.sh

probe() { timeout 120 podman run --rm --pull=never localhost/mycel-demo:0.1 -exit-after 1ms -exit-code 0 >/dev/null 2>&1; }
if ! probe; then
  echo "setup: plain 'podman run' fails here; configuring runc and default ulimits in /etc/containers/containers.conf"
  $sudo mkdir -p /etc/containers
  $sudo tee /etc/containers/containers.conf >/dev/null <<'CONF'
# Written by Mycel's scripts/setup.sh: crun fails on hybrid cgroups and the
# default rlimits on some machines; runc with explicit ulimits works.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
CONF
  # A running API service must pick up the new configuration.
  pkill -f 'podman system service' 2>/dev/null || true
  probe || { echo "setup: podman run still fails; see 'podman run --rm localhost/mycel-demo:0.1'" >&2; exit 1; }
fi
echo "setup: ok (podman $(podman --version | awk '{print $3}'))"
