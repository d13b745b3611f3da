#!/usr/bin/env bash
# The ansible-core matrix (make test-matrix, part of make test): the older controller lines the
# collection supports (meta/runtime.yml: >=2.16.0, no upper bound) run what .venv runs on 2.19:
#   unit      tests/unit (pytest)
#   sanity    ansible-test sanity of that line, on the built artifact (scripts/sanity.sh)
#   molecule  one whole-lab scenario ($CORE_MATRIX_SCENARIO, pip_mirror: mirror_select, pip_mirror
#             and conda_mirror converged, idempotence, the real pip/conda clients in verify)
# for each line in $CORE_LINES (default: 2.16 2.17 2.18; 2.19 is .venv's line, run by make test's
# unit, sanity and molecule targets). Usage: core-matrix.sh [venv|unit|sanity|molecule|all]...
# `all` (make test-matrix) runs unit and sanity on every line and the scenario on the lines in
# $CORE_MATRIX_MOLECULE_LINES (default: every line in $CORE_LINES).
#
# One venv per line, .venv-core-2.NN: ansible-core pinned by requirements/core-2.NN.txt and nothing
# else; pytest, molecule, trustme, ... come from .venv through a .pth file placed after the venv's
# own site-packages, so that line's ansible-core (and its Jinja2/resolvelib) shadow .venv's. Re-runs
# are cheap: a stamp holds the hash of the inputs. Sanity gets .venv-sanity-2.NN (the sanity
# tests' own pinned requirements of that line). Molecule runs under the team's Docker lock.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LINES=${CORE_LINES:-2.16 2.17 2.18}
SCENARIO=${CORE_MATRIX_SCENARIO:-pip_mirror}
MOLECULE_LINES=${CORE_MATRIX_MOLECULE_LINES:-$LINES}
MAIN=$ROOT/${VENV:-.venv}
main_site=$("$MAIN/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

venv() {
  local line=$1 cv=$ROOT/.venv-core-$1 req=requirements/core-$1.txt want
  [[ -f $req ]] || { echo "core-matrix.sh: no $req (a supported line needs its pin there)" >&2; exit 2; }
  want=$( { cat "$req"; echo "$main_site layout-2"; } | sha256sum | cut -c1-16)
  if [[ ! -f $cv/.gpulab-stamp || $(cat "$cv/.gpulab-stamp") != "$want" ]]; then
    rm -rf "$cv"
    "${PYTHON:-python3}" -m venv "$cv"
    "$cv/bin/pip" install -q --disable-pip-version-check -r "$req"
    local site; site=$("$cv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # zz-: .pth paths are appended after site-packages, so this venv's packages come first.
    echo "$main_site" > "$site/zz-gpulab-main-venv.pth"
    # The tools' entry points, run by this venv's interpreter (molecule finds ansible-playbook on PATH).
    # (and pypi-server, which pip_mirror's prepare starts beside ansible_playbook_python).
    local tool
    for tool in pytest:pytest molecule:molecule pypi-server:pypiserver; do
      printf '#!/bin/sh\nexec "%s/bin/python" -m %s "$@"\n' "$cv" "${tool#*:}" > "$cv/bin/${tool%%:*}"
      chmod +x "$cv/bin/${tool%%:*}"
    done
    echo "$want" > "$cv/.gpulab-stamp"
  fi
  local got; got=$("$cv/bin/ansible" --version | sed -n 1p)
  [[ $got == *"core $line."* ]] || { echo "core-matrix.sh: $cv runs '$got', not $line" >&2; exit 1; }
}

# The environment the Makefile gives .venv's tools, with this line's venv first on PATH.
with_line() {
  local line=$1; shift
  env PATH="$ROOT/.venv-core-$line/bin:$MAIN/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg" \
    ANSIBLE_COLLECTIONS_PATH="$ROOT/collections:$MAIN/collections" PY_COLORS=0 ANSIBLE_FORCE_COLOR=0 "$@"
}

timed() {
  local what=$1 t0=$SECONDS rc=0; shift
  echo "== core-matrix: $what"
  "$@" || rc=$?  # explicit: set -e does not apply where the caller tests timed's status
  if [[ $rc -ne 0 ]]; then echo "== core-matrix: $what FAILED (rc $rc) in $((SECONDS - t0)) s"; return $rc; fi
  echo "== core-matrix: $what passed in $((SECONDS - t0)) s"
}

unit() {
  timed "ansible-core $1 unit" with_line "$1" python -m pytest -q -p no:cacheprovider tests/unit
}

sanity() {
  local core; core=$(grep -E '^ansible-core==' "requirements/core-$1.txt")
  ls build/dist/gpulab-provision-*.tar.gz >/dev/null 2>&1 || make -s build
  timed "ansible-core $1 sanity" env SANITY_VENV="$ROOT/.venv-sanity-$1" SANITY_CORE="$core" \
    SANITY_ROOT="/tmp/gpulab-sanity-$1" bash scripts/sanity.sh
}

molecule() {
  # Timed inside the lock: the wait for another scenario is not this line's time.
  with_line "$1" flock /tmp/gpulab-docker.lock bash "$ROOT/scripts/core-matrix.sh" _molecule_locked "$1"
}

molecule_locked() {
  local s=$SCENARIO rc=0
  ansible --version | sed -n 1p
  timed "ansible-core $1 molecule $s" python -m molecule test -s "$s" || rc=$?
  docker volume ls -q --filter name="gpulab-molecule-$s-" | xargs -r docker volume rm >/dev/null 2>&1 || true
  return $rc
}

if [[ ${1:-} == _molecule_locked ]]; then molecule_locked "$2"; exit; fi

steps=("$@"); [[ ${#steps[@]} -gt 0 ]] || steps=(all)
t_all=$SECONDS
for line in $LINES; do
  venv "$line"
  for step in "${steps[@]}"; do
    case $step in
      venv) ;;
      unit|sanity|molecule) "$step" "$line" ;;
      all) unit "$line"; sanity "$line"; [[ " $MOLECULE_LINES " != *" $line "* ]] || molecule "$line" ;;
      *) echo "core-matrix.sh: unknown step $step (venv, unit, sanity, molecule, all)" >&2; exit 2 ;;
    esac
  done
done
echo "core-matrix.sh: ${steps[*]} passed on ansible-core $LINES in $((SECONDS - t_all)) s"
