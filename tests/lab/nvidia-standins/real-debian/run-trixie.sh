#!/usr/bin/env bash
# Debian 13's real archive, once, by hand (needs deb.debian.org; user space only, ~100 MB):
#   tests/lab/nvidia-standins/real-debian/run-trixie.sh [logfile]
set -euo pipefail
cd "$(dirname "$0")/../../../.."
name=gpulab-nvidia-real-trixie
log=${1:-/tmp/$name.log}
docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
  gpulab/debian:trixie /lib/systemd/systemd >/dev/null
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
start=$(date +%s)
ansible-playbook -i "$name," -c community.docker.docker tests/lab/nvidia-standins/real-debian/run-trixie.yml 2>&1 | tee "$log"
echo "elapsed: $(( $(date +%s) - start )) s" | tee -a "$log"
set +e
{
  echo "== installed packages"; docker exec "$name" sh -c 'dpkg -l | grep -iE "nvidia|cuda" | cut -c1-100'
  echo "== apt sources the role wrote"; docker exec "$name" cat /etc/apt/sources.list.d/gpulab-debian-nonfree.sources
  echo "== nvidia-smi (no GPU here)"; docker exec "$name" nvidia-smi
  echo "== downloaded: $(docker exec "$name" sh -c 'du -sh /var/cache/apt/archives | cut -f1')"
} 2>&1 | tee -a "$log"
