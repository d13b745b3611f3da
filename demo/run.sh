#!/usr/bin/env bash
# make demo: a small GPU lab on one machine.
#  - three Debian containers (systemd, host network) play the GPU hosts gpu1..gpu3;
#  - mirrors listen on 127.0.10.x of this machine: two real PyPI servers (pypiserver with real
#    wheels), one port that refuses, one that accepts and never answers, one captive portal that
#    answers 200 with a login page, a real Docker registry (Distribution v2) and a dead one;
#  - gpu3 is pinned to the second PyPI mirror through host_vars;
#  - site.yml provisions them, a real pip installs through the chosen mirror, then the chosen
#    mirror is killed and playbooks/failover.yml moves every host off it.
# Usage: demo/run.sh [--clean] (DEMO_KEEP=1 keeps the lab running afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/build/demo
IMAGE=${GPULAB_BASE_IMAGE:-gpulab/debian:bookworm}
HOSTS=(gpu1 gpu2 gpu3)
export PATH=$ROOT/.venv/bin:$PATH
export ANSIBLE_CONFIG=$ROOT/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH=$ROOT/collections:$ROOT/.venv/collections
INV=$ROOT/demo/inventory

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop_mirrors() {
  for pid in "$STATE"/pids/*.pid; do
    [[ -f $pid ]] || continue
    kill "$(cat "$pid")" 2>/dev/null || true
    rm -f "$pid"
  done
}
clean() {
  stop_mirrors
  for h in "${HOSTS[@]}"; do docker rm -f "gpulab-demo-$h" >/dev/null 2>&1 || true; done
}
if [[ ${1:-} == --clean ]]; then clean; echo "demo: cleaned"; exit 0; fi
if [[ ${DEMO_KEEP:-0} != 1 ]]; then trap clean EXIT; fi

clean
mkdir -p "$STATE"/{pids,logs,wheels,wheels2,registry}

say "Mirrors on 127.0.10.x"
# Real wheels from PyPI (once; cached under build/demo).
if ! ls "$STATE"/wheels/six-*.whl >/dev/null 2>&1; then
  pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$STATE/wheels" six idna packaging
fi
cp -n "$STATE"/wheels/*.whl "$STATE/wheels2/"
start() { # name, command...
  local name=$1; shift
  setsid "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}
start pypi-lab   pypi-server run -i 127.0.10.1 -p 8080 --log-stream stderr "$STATE/wheels"
start pypi-tuna  pypi-server run -i 127.0.10.5 -p 8080 --log-stream stderr "$STATE/wheels2"
start stall      python3 tests/lab/fake_mirror.py --listen 127.0.10.3:8080 --mode stall --lifetime 1800
start captive    python3 tests/lab/fake_mirror.py --listen 127.0.10.4:8080 --mode captive --lifetime 1800
cat >"$STATE/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $STATE/registry
http:
  addr: 127.0.10.6:5000
YML
start registry docker-registry serve "$STATE/registry.yml"
for addr in 127.0.10.1:8080 127.0.10.5:8080 127.0.10.3:8080 127.0.10.4:8080 127.0.10.6:5000; do
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/${addr%:*}/${addr#*:}) 2>/dev/null && break; sleep 0.2; done
done
printf '  %-22s %s\n' \
  "127.0.10.1:8080" "lab      PyPI (pypiserver, real wheels)" \
  "127.0.10.2:8080" "ustc     refuses connections (dead)" \
  "127.0.10.3:8080" "bfsu     accepts and never answers (dead)" \
  "127.0.10.4:8080" "campus   captive portal: 200 + login page" \
  "127.0.10.5:8080" "tuna     PyPI (pypiserver, real wheels)" \
  "127.0.10.6:5000" "registry Docker registry (Distribution v2)" \
  "127.0.10.2:5000" "hubdead  registry port that refuses"

say "Three GPU hosts (containers: systemd, host network)"
for h in "${HOSTS[@]}"; do
  docker run -d --name "gpulab-demo-$h" --network host --tmpfs /run --tmpfs /run/lock \
    -v /sys/fs/cgroup:/sys/fs/cgroup:ro "$IMAGE" /lib/systemd/systemd >/dev/null
  echo "  gpulab-demo-$h"
done

say "ansible-playbook site.yml"
ansible-playbook -i "$INV" site.yml -e gpulab_report_path="$STATE/report-site.json"

say "Second run: nothing changes"
ansible-playbook -i "$INV" site.yml -e gpulab_report_path="$STATE/report-site2.json" | tee "$STATE/logs/second-run.log" | tail -8
if grep -E 'changed=[1-9]' "$STATE/logs/second-run.log"; then echo "demo: second run changed something" >&2; exit 1; fi

pip_check() { # host
  docker exec "gpulab-demo-$1" sh -c 'test -x /opt/demo/bin/pip || python3 -m venv /opt/demo; /opt/demo/bin/pip install -q --no-cache-dir --force-reinstall --disable-pip-version-check six -v 2>&1 | grep -m1 "Looking in indexes"' \
    | sed "s/^/  $1: /"
}
say "A real pip on each host installs through its chosen mirror"
for h in "${HOSTS[@]}"; do pip_check "$h"; done

say "The lab mirror (127.0.10.1) dies; playbooks/failover.yml"
kill "$(cat "$STATE/pids/pypi-lab.pid")"; rm -f "$STATE/pids/pypi-lab.pid"
start_ts=$(date +%s.%N)
ansible-playbook -i "$INV" playbooks/failover.yml -e gpulab_report_path="$STATE/report-failover.json"
end_ts=$(date +%s.%N)
printf '  failover.yml took %.1f s for %d hosts\n' "$(echo "$end_ts - $start_ts" | bc -l 2>/dev/null || python3 -c "print($end_ts-$start_ts)")" "${#HOSTS[@]}"

say "pip works again, through the next healthy mirror"
for h in "${HOSTS[@]}"; do pip_check "$h"; done

say "Per-host mirror report after the failover ($STATE/report-failover.json)"
# The same table as the report play prints, read back from its JSON file.
PYTHONPATH=$ROOT/collections python3 - "$STATE/report-failover.json" <<'PY'
import json, sys
from ansible_collections.gpulab.provision.plugins.module_utils.report import format_report
print(format_report(json.load(open(sys.argv[1]))))
PY
echo "  (first run: $STATE/report-site.json)"
[[ ${DEMO_KEEP:-0} == 1 ]] && echo "lab kept running: demo/run.sh --clean removes it"
echo "demo: done"
