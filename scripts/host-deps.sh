#!/usr/bin/env bash
# Install the Debian packages the test harness and the demo need, and make sure a dockerd is
# running. Idempotent: on a machine that already has everything it only checks and returns.
set -euo pipefail

PKGS=(docker.io debootstrap docker-registry apt-utils gpg zstd rsync make git curl ca-certificates openssl shellcheck prometheus prometheus-node-exporter)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "host-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The package's own registry service (started by the package's init script) would listen on
# :5000 of every address; stop it. Our registries (demo, scenarios) listen on loopback only and
# use their own configuration files, so they are left alone.
if pgrep -f 'docker-registry serve /etc/docker/registry/config.yml' >/dev/null 2>&1; then
  pkill -f 'docker-registry serve /etc/docker/registry/config.yml' || true
fi

# prometheus (promtool, and the real server the metrics scenario scrapes with) and
# prometheus-node-exporter: their package services would listen on :9090 and :9100 of every
# address; stop them. The tests start their own, on loopback, with their own flags.
for svc in prometheus prometheus-node-exporter; do
  pkill -x "$svc" 2>/dev/null || true
done

docker_ok() { timeout 10 docker info >/dev/null 2>&1; }
if ! docker_ok; then
  echo "host-deps: starting dockerd"
  setsid /usr/sbin/dockerd >/var/log/gpulab-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do docker_ok && break; sleep 1; done
  docker_ok || { echo "host-deps: dockerd did not start, see /var/log/gpulab-dockerd.log" >&2; tail -20 /var/log/gpulab-dockerd.log >&2; exit 1; }
fi
echo "host-deps: ok ($(docker version --format '{{.Server.Version}}') server)"
