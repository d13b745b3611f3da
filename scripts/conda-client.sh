#!/usr/bin/env bash
# A real conda client for the tests: conda 26.7.1 from source in a venv, the classic
# solver, and a tiny local channel, set up by the team's shared recipe (../shared/conda-client,
# read-only; RECIPE.md there says what it does). Idempotent: ~80 s cold, ~20 s warm.
#
#   scripts/conda-client.sh        set up (or check) the client in $GPULAB_CONDA_WORK; prints that directory
#
# The recipe starts a channel server of its own; it is stopped here: the tests serve the channel
# themselves (one server per mirror, each with its own access log). A missing recipe is an error,
# never a skip: the tests must prove that conda reads what the roles write.
set -euo pipefail

TOP="$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))"
SHARED="${GPULAB_CONDA_SHARED:-$TOP/../shared/conda-client}"
W="${GPULAB_CONDA_WORK:-/tmp/gpulab-conda-real}"

if [ ! -x "$SHARED/setup.sh" ]; then
  echo "conda-client: $SHARED/setup.sh not found: the real-conda tests need the shared conda recipe" \
       "beside the checkout (../shared/conda-client, or set GPULAB_CONDA_SHARED to its folder)" >&2
  exit 2
fi
mkdir -p "$W"
# One setup at a time for every session on this machine (the work directory is shared).
exec 9>"$W.lock"
flock -w 600 9
# A free loopback port for the recipe's own server, which is stopped again at once.
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$W.setup.log"
if ! W="$W" PORT="$PORT" WITH_RATTLER=0 "$SHARED/setup.sh" --no-demo >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "conda-client: $SHARED/setup.sh failed (log: $log)" >&2
  exit 1
fi
W="$W" "$SHARED/setup.sh" stop >/dev/null 2>&1 || true
if ! "$W/bin/conda" --version >/dev/null 2>&1 || [ ! -s "$W/srv/pkgs/main/noarch/repodata.json" ]; then
  echo "conda-client: $W/bin/conda or the channel in $W/srv is missing after setup (log: $log)" >&2
  exit 1
fi
echo "$W"
