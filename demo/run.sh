#!/usr/bin/env bash
# make demo: a small GPU lab on one machine, every listener on 127.0.10.0/24.
#  - four Debian containers (systemd, host network): the GPU hosts gpu1..gpu3 and the lab cache
#    node cache1 (group gpulab_cache_nodes: nginx + devpi-server on 127.0.10.10:3141, installed from a
#    wheelhouse downloaded once from PyPI);
#  - "public" mirrors on 127.0.10.x of this machine: two real PyPI servers (pypiserver with real
#    wheels), one port that refuses, one that accepts and never answers, one captive portal that
#    answers 200 with a login page, a real Docker registry (Distribution v2) and a dead one;
#  - gpu3 is pinned to the tuna mirror and runs the watcher (gpulab-mirror-watch, a systemd timer).
# The story, each step checked (the script stops with "demo: FAILED: ..." when one misbehaves):
#  1. site.yml sets up the cache node first, then the GPU hosts prefer it (cold, no warm-up: every
#     host's probe finds it healthy); a second run changes
#     nothing; a real pip on each host installs through its chosen mirror.
#  2. gpu3's mirror (tuna) dies: with no Ansible run, its watcher moves pip to the cache node.
#  3. every public PyPI mirror dies: a fresh venv still installs the same packages (the cache).
#  4. devpi stops on the cache node: its nginx still serves the stored wheels (pip on gpu2 installs);
#     then the whole node stops, the lab mirror comes back: failover.yml moves the GPU hosts to it.
#  5. the report, with its cache-node section, and each host's active-mirror series (metrics).
#  6. GPU node health: gpu2 gets a fake nvidia-smi serving a recorded H100 report with a row remap
#     pending (and the kernel log's Xid 48 that caused it); playbooks/validate.yml judges gpu2
#     degraded, names it with its problems and fails it; gpu1 and gpu3 (no GPU) are SKIPPED.
# Usage: demo/run.sh [--clean] (DEMO_KEEP=1 keeps the lab running afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/build/demo
IMAGE=${GPULAB_BASE_IMAGE:-gpulab/debian:bookworm}
GPUS=(gpu1 gpu2 gpu3)
HOSTS=(cache1 "${GPUS[@]}")
PKGS=(six idna packaging)                 # what the GPU hosts install (real wheels from PyPI)
CACHE_URL=http://127.0.10.10:3141/root/pypi/+simple
LAB_URL=http://127.0.10.1:8080/simple
TUNA_URL=http://127.0.10.5:8080/simple
export PATH=$ROOT/.venv/bin:$PATH
export ANSIBLE_CONFIG=$ROOT/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH=$ROOT/collections:$ROOT/.venv/collections
INV=$ROOT/demo/inventory
T0=$SECONDS

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\n\033[1;31mdemo: FAILED: %s\033[0m\n' "$*" >&2; exit 1; }

stop_one() { # name: stop one stand-in (its pid file under build/demo/pids)
  local pid=$STATE/pids/$1.pid
  [[ -f $pid ]] || return 0
  kill "$(cat "$pid")" 2>/dev/null || true
  rm -f "$pid"
}
stop_mirrors() {
  for pid in "$STATE"/pids/*.pid; do
    [[ -f $pid ]] || continue
    stop_one "$(basename "$pid" .pid)"
  done
}
clean() {
  stop_mirrors
  for h in "${HOSTS[@]}"; do docker rm -f "gpulab-demo-$h" >/dev/null 2>&1 || true; done
}
if [[ ${1:-} == --clean ]]; then clean; echo "demo: cleaned"; exit 0; fi
if [[ ${DEMO_KEEP:-0} != 1 ]]; then trap clean EXIT; fi

answers() { (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; }   # host:port accepts a connection
wait_port() { # host:port up|down
  for _ in $(seq 1 75); do
    if answers "$1"; then [[ $2 == up ]] && return 0; else [[ $2 == down ]] && return 0; fi
    sleep 0.2
  done
  fail "$1 is not $2 after 15 s"
}
start() { # name, command...
  local name=$1; shift
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}
start_pypi() { # name ip dir
  start "pypi-$1" pypi-server run -i "$2" -p 8080 --log-stream stderr "$3"
}
playbook() { # log-name, ansible-playbook arguments...: full output to a log; the recap on screen
  local log=$STATE/logs/$1.log; shift
  if ! ansible-playbook -i "$INV" "$@" >"$log" 2>&1; then
    tail -40 "$log"; fail "ansible-playbook $* (full output: $log)"
  fi
  sed -n '/^PLAY RECAP/,$p' "$log" | sed '/^$/d'
}
in_host() { docker exec "gpulab-demo-$1" sh -c "$2"; }
index_of() { # host: pip's own view of its index (/etc/pip.conf, as the roles and the watcher wrote it)
  # (pip 23.0's `pip config get` does not see /etc/pip.conf; `pip config list` does)
  in_host "$1" 'test -x /opt/demo/bin/pip || python3 -m venv /opt/demo; /opt/demo/bin/pip config list' \
    | sed -n "s/^global\.index-url='\(.*\)'\$/\1/p"
}
PIPN=0
pip_install() { # host venv expected-index: a real pip install of PKGS, checked
  local h=$1 venv=$2 expect=$3 log idx
  PIPN=$((PIPN + 1)); log=$STATE/logs/pip-$PIPN-$h.log
  if ! in_host "$h" "test -x $venv/bin/pip || python3 -m venv $venv; $venv/bin/pip install -v --no-cache-dir --force-reinstall --disable-pip-version-check ${PKGS[*]}" >"$log" 2>&1; then
    tail -6 "$log"; fail "pip on $h could not install ${PKGS[*]} (log: $log)"
  fi
  idx=$(grep -m1 'Looking in indexes' "$log" || true)
  [[ $idx == "Looking in indexes: $expect" ]] || fail "pip on $h: expected index $expect, got '$idx' (log: $log)"
  printf '  %s %s: %s -> %s\n' "$h" "$venv" "${idx#Looking in indexes: }" "$(grep -m1 -o 'Successfully installed.*' "$log")"
}
expect_index() { # host url
  local got; got=$(index_of "$1") || fail "$1: pip config list failed"
  [[ $got == "$2" ]] || fail "$1: pip.conf index-url is '$got', expected $2"
  printf '  %s: index-url = %s\n' "$1" "$got"
}
report() { # json [cache]: the report play's table, read back from its JSON file
  PYTHONPATH=$ROOT/collections python3 - "$@" <<'PY'
import json, sys
from ansible_collections.gpulab.provision.plugins.module_utils.report import format_report
text = format_report(json.load(open(sys.argv[1])))
if sys.argv[2:] == ["cache"]:
    text = text[text.index("cache nodes ("):] if "cache nodes (" in text else "NO CACHE-NODE SECTION"
print("\n".join("  " + line for line in text.splitlines()))
PY
}

clean
mkdir -p "$STATE"/{pids,logs,wheels,wheels2,wheelhouse,registry}
rm -f "$STATE"/logs/*.log "$STATE"/report-*.json

say "Mirrors on 127.0.10.x"
# Real wheels from PyPI (once; cached under build/demo): what the hosts install, and devpi-server's
# wheelhouse for the cache node (cache_node_wheelhouse, as playbooks/bundle.yml fills it offline).
if ! ls "$STATE"/wheels/six-*.whl >/dev/null 2>&1; then
  pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$STATE/wheels" "${PKGS[@]}" \
    >"$STATE/logs/pip-download.log" 2>&1 || { tail "$STATE/logs/pip-download.log"; fail "pip download ${PKGS[*]}"; }
fi
if [[ ! -f $STATE/wheelhouse/.done ]]; then
  pip download -q --disable-pip-version-check --only-binary=:all: -d "$STATE/wheelhouse" devpi-server \
    >"$STATE/logs/pip-download.log" 2>&1 || { tail "$STATE/logs/pip-download.log"; fail "pip download devpi-server"; }
  touch "$STATE/wheelhouse/.done"
fi
cp -n "$STATE"/wheels/*.whl "$STATE/wheels2/"
start_pypi lab  127.0.10.1 "$STATE/wheels"
start_pypi tuna 127.0.10.5 "$STATE/wheels2"
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
for addr in 127.0.10.1:8080 127.0.10.5:8080 127.0.10.3:8080 127.0.10.4:8080 127.0.10.6:5000; do wait_port "$addr" up; done
printf '  %-22s %s\n' \
  "127.0.10.1:8080" "lab      PyPI (pypiserver, real wheels)" \
  "127.0.10.2:8080" "ustc     refuses connections (dead)" \
  "127.0.10.3:8080" "bfsu     accepts and never answers (dead)" \
  "127.0.10.4:8080" "campus   captive portal: 200 + login page" \
  "127.0.10.5:8080" "tuna     PyPI (pypiserver, real wheels)" \
  "127.0.10.6:5000" "registry Docker registry (Distribution v2)" \
  "127.0.10.2:5000" "hubdead  registry port that refuses" \
  "127.0.10.10:3141" "cache1   the lab cache node's PyPI: nginx + devpi (after site.yml)"

say "Four containers (systemd, host network): cache node cache1, GPU hosts gpu1..gpu3"
for h in "${HOSTS[@]}"; do
  docker run -d --name "gpulab-demo-$h" --network host --tmpfs /run --tmpfs /run/lock \
    -v /sys/fs/cgroup:/sys/fs/cgroup:ro "$IMAGE" /lib/systemd/systemd >/dev/null
  echo "  gpulab-demo-$h"
done

# The node's nginx collapses concurrent first requests for a project into one request to devpi, so
# the GPU hosts' probes of a cold node (all at the same moment) find every file: no warm-up step.
say "ansible-playbook site.yml --limit gpulab_cache_nodes: the cache node first"
playbook site-cache site.yml --limit gpulab_cache_nodes -e gpulab_report_path="$STATE/report-cache.json"
wait_port 127.0.10.10:3141 up

say "ansible-playbook site.yml: the cache node (no change), then the GPU hosts prefer it"
playbook site-run site.yml -e gpulab_report_path="$STATE/report-site.json"
report "$STATE/report-site.json"

say "Second run: nothing changes"
playbook second-run site.yml -e gpulab_report_path="$STATE/report-site2.json"
if grep -E 'changed=[1-9]' "$STATE/logs/second-run.log"; then fail "the second site.yml run changed something"; fi

say "A real pip on each GPU host: gpu1, gpu2 through the cache node, gpu3 through its pin (tuna)"
wait_port 127.0.10.10:3141 up
pip_install gpu1 /opt/demo "$CACHE_URL"
pip_install gpu2 /opt/demo "$CACHE_URL"
pip_install gpu3 /opt/demo "$TUNA_URL"

say "The watcher on gpu3: tuna (127.0.10.5) dies, no Ansible run"
expect_index gpu3 "$TUNA_URL"
in_host gpu3 'systemctl is-active --quiet gpulab-mirror-watch.timer' || fail "gpu3: gpulab-mirror-watch.timer is not active"
stop_one pypi-tuna; wait_port 127.0.10.5:8080 down
t=$SECONDS; got=$TUNA_URL
# interval 10 s x confirm 2 + deadline 2 s + jitter and each run's own time: 32 s (molecule/mirror_watch)
while (( SECONDS - t < 60 )); do
  got=$(index_of gpu3) || fail "gpu3: pip config list failed"
  [[ $got != "$TUNA_URL" ]] && break
  sleep 1
done
if [[ $got == "$TUNA_URL" ]]; then
  in_host gpu3 'journalctl -u gpulab-mirror-watch.service -o cat --no-pager | tail -8' || true
  fail "gpu3's watcher did not switch pip off the dead tuna mirror within 60 s (journal above)"
fi
echo "  switched after $((SECONDS - t)) s, with no Ansible run; the watcher's journal:"
in_host gpu3 'journalctl -u gpulab-mirror-watch.service -o cat --no-pager | grep "pypi: " | grep -v "pypi: ok " | tail -3' | sed 's/^/    /'
expect_index gpu3 "$CACHE_URL"
pip_install gpu3 /opt/demo "$CACHE_URL"

say "Every public PyPI mirror dies; a fresh venv on gpu1 installs the same packages from the cache"
for m in pypi-lab stall captive; do stop_one $m; done
for addr in 127.0.10.1:8080 127.0.10.2:8080 127.0.10.3:8080 127.0.10.4:8080 127.0.10.5:8080; do wait_port "$addr" down; done
echo "  127.0.10.1-5:8080: nothing listens"
in_host gpu1 'rm -rf /opt/offline'
pip_install gpu1 /opt/offline "$CACHE_URL"

say "devpi stops on the cache node (no public mirror either): its nginx still serves what is on disk"
in_host cache1 'systemctl stop gpulab-cache-devpi'
in_host gpu2 'rm -rf /opt/nodevpi'
pip_install gpu2 /opt/nodevpi "$CACHE_URL"

say "The whole cache node stops; the lab mirror comes back; playbooks/failover.yml on the GPU hosts"
start_pypi lab 127.0.10.1 "$STATE/wheels"; wait_port 127.0.10.1:8080 up
in_host cache1 'systemctl stop gpulab-cache-nginx'; wait_port 127.0.10.10:3141 down
echo "  127.0.10.10:3141 (cache1): stopped; 127.0.10.1:8080 (lab): serving"
start_ts=$(date +%s.%N)
# --limit lab: the cache node is down for repair (on it, failover.yml would start devpi again).
playbook failover playbooks/failover.yml --limit lab -e gpulab_report_path="$STATE/report-failover.json"
printf '  failover.yml took %.1f s for %d hosts\n' "$(python3 -c "print($(date +%s.%N) - $start_ts)")" "${#GPUS[@]}"

say "pip works again, through the lab mirror"
for h in "${GPUS[@]}"; do pip_install "$h" /opt/demo "$LAB_URL"; done

say "Metrics: what each host's node_exporter serves from gpulab_metrics_dir (the active mirror, the switches)"
# The files node_exporter's textfile collector reads (/var/lib/prometheus/node-exporter, Debian's default);
# docs/metrics.md has the metric table and the shipped alert rules.
for h in "${GPUS[@]}"; do
  prom=$(in_host "$h" 'cat /var/lib/prometheus/node-exporter/gpulab_mirrors.prom') \
    || fail "$h: no gpulab_mirrors.prom in /var/lib/prometheus/node-exporter"
  grep -E '^gpulab_mirror_(active_info|switches_total)\{' <<<"$prom" | sed "s/^/  $h  /"
  grep -q '^gpulab_mirror_active_info{mirror="lab",service="pypi",' <<<"$prom" \
    || fail "$h: gpulab_mirror_active_info does not show pypi on lab after failover.yml"
done
grep -q 'reason="failover",service="pypi",to="cache-cache1"' <(in_host gpu3 'cat /var/lib/prometheus/node-exporter/gpulab_mirrors.prom') \
  || fail "gpu3: the watcher's switch off tuna is not counted in gpulab_mirror_switches_total"

say "Cache-node section after site.yml ($STATE/report-site.json)"
report "$STATE/report-site.json" cache
grep -q "uses it: gpu1, gpu2" <(report "$STATE/report-site.json" cache) || fail "the site report does not show gpu1, gpu2 on cache1"

say "Report after the failover ($STATE/report-failover.json)"
report "$STATE/report-failover.json"
grep -q "fell back: gpu1 (on lab), gpu2 (on lab), gpu3 (on lab)" <(report "$STATE/report-failover.json" cache) \
  || fail "the failover report does not show every GPU host fallen back from cache1 to lab"

say "GPU node health: gpu2's GPU has a row remap pending (a fake nvidia-smi serving a recorded H100 report)"
# The containers have no GPU: gpu2 gets tests/fixtures/gpu-health's fake nvidia-smi, the real H100
# report with the fault the driver prints after an uncorrectable error, and the kernel log lines of
# that error (gpu_health_kernel_log_sources in host_vars/gpu2.yml). No kernel module is loaded, so
# validate.yml's driver checks FAIL there too (a fake is never believed as a driver); gpu_health is
# the step's point.
FX=$ROOT/tests/fixtures/gpu-health
docker cp "$FX/fake-nvidia-smi" gpulab-demo-gpu2:/usr/local/bin/nvidia-smi
docker cp "$FX/h100-remap-pending.xml" gpulab-demo-gpu2:/etc/gpulab-fake-smi.xml
docker cp "$ROOT/tests/fixtures/nvidia-smi/h100-80gb-hbm3-580-open.q.txt" gpulab-demo-gpu2:/etc/gpulab-fake-smi.q.txt
docker cp "$FX/dmesg-xid48-remap.txt" gpulab-demo-gpu2:/var/log/gpulab-kern.log
log=$STATE/logs/validate.log
# (JSON results: the summary's lines are read back from the log below)
if ANSIBLE_CALLBACK_RESULT_FORMAT=json ansible-playbook -i "$INV" playbooks/validate.yml -e gpulab_validate_hosts=lab >"$log" 2>&1; then
  fail "validate.yml passed: gpu2 should have failed as degraded (log: $log)"
fi
# The validation summary (the debug task's list, one line per host and check), as printed.
sed -n '/TASK \[Print one line per host and check\]/,/^PLAY /p' "$log" | sed -n 's/^ *"\(.*\)",\{0,1\}$/  \1/p'
sed -n '/^PLAY RECAP/,$p' "$log" | sed '/^$/d'
grep -Eq '"gpu2 +gpu_health +FAIL +degraded: GPU 0 ' "$log" || fail "validate.yml did not judge gpu2 degraded (log: $log)"
grep -Eq '^gpu2 +: .* failed=1 ' "$log" || fail "validate.yml did not fail gpu2 (log: $log)"
for h in gpu1 gpu3; do
  grep -Eq "\"$h +gpu_health +SKIPPED " "$log" || fail "validate.yml: $h's gpu_health is not SKIPPED (log: $log)"
  grep -Eq "^$h +: .* failed=0 " "$log" || fail "validate.yml failed $h, which has no GPU (log: $log)"
done

[[ ${DEMO_KEEP:-0} == 1 ]] && echo "lab kept running: demo/run.sh --clean removes it"
echo
echo "demo: done in $(( (SECONDS - T0) / 60 )) min $(( (SECONDS - T0) % 60 )) s; logs in $STATE/logs"
