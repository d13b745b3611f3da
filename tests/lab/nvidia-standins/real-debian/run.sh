#!/usr/bin/env bash
# Real Debian path, once, by hand (needs deb.debian.org; several hundred MB; minutes):
#   tests/lab/nvidia-standins/real-debian/run.sh [logfile]
set -euo pipefail
cd "$(dirname "$0")/../../../.."
name=gpulab-nvidia-real-debian
log=${1:-/tmp/$name.log}
docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
  gpulab/debian:bookworm /lib/systemd/systemd >/dev/null
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
start=$(date +%s)
ansible-playbook -i "$name," -c community.docker.docker tests/lab/nvidia-standins/real-debian/run.yml 2>&1 | tee "$log"
echo "elapsed: $(( $(date +%s) - start )) s" | tee -a "$log"
set +e  # the evidence below is collected even where a command fails (nvidia-smi will)
{
  echo "== uname -r (the host's kernel, shared by the container)"; docker exec "$name" uname -r
  echo "== dkms status"; docker exec "$name" dkms status
  echo "== what dpkg printed about DKMS and the module (/var/log/apt/term.log)"
  docker exec "$name" grep -iE "dkms|kernel headers|module build|nvidia-current|Building|Error|skipped" /var/log/apt/term.log
  echo "== built modules"; docker exec "$name" sh -c 'ls -l /lib/modules/*/updates/dkms/ 2>&1'
  echo "== DKMS make.log tail (if a build failed)"; docker exec "$name" sh -c 'tail -n 30 /var/lib/dkms/nvidia-current/*/build/make.log 2>&1' 
  echo "== nvidia-smi"; docker exec "$name" nvidia-smi
  echo "== installed packages"; docker exec "$name" sh -c 'dpkg -l | grep -E "nvidia|dkms|linux-headers|gcc-12 "'
  echo "== downloaded: $(docker exec "$name" sh -c 'du -sh /var/cache/apt/archives | cut -f1')"
} 2>&1 | tee -a "$log"
