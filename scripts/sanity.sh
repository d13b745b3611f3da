#!/usr/bin/env bash
# ansible-test must run inside ansible_collections/<ns>/<name>. Install the built tarball offline
# (which also proves the artifact installs without Galaxy) into a directory outside this git
# checkout (inside it, ansible-test would see only git-tracked files of the outer repo) and run
# sanity there. ansible-test can neither pull its container images nor fetch the get-pip
# bootstrap that --venv needs on lab CI machines, so it runs --local in a venv of its own
# (.venv-sanity: ansible-core plus the sanity tests' pinned requirements, from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
# SANITY_VENV and SANITY_CORE: another ansible-core line's sanity (scripts/core-matrix.sh).
SVENV=${SANITY_VENV:-$PWD/.venv-sanity}
core=${SANITY_CORE:-$(grep -E '^ansible-core==' requirements/dev.txt)}
if [[ ! -x $SVENV/bin/ansible-test || $(cat "$SVENV/.stamp" 2>/dev/null) != "$core" ]]; then
  rm -rf "$SVENV"; python3 -m venv "$SVENV"
  "$SVENV/bin/pip" install -q --disable-pip-version-check "$core"
  echo "$core" > "$SVENV/.stamp"
fi
export PATH=$SVENV/bin:$PATH
pipv=$(python3 - "$SVENV" <<'PY'
import glob, re, sys
src = open(glob.glob(sys.argv[1] + "/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py")[0]).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
cache=~/.ansible/test/cache/get_pip_${pipv//./_}.py
# Ours is (re)written unless a real get-pip.py is already cached there.
if [[ ! -f $cache ]] || grep -q "Stand-in for ansible-test" "$cache"; then
  mkdir -p "$(dirname "$cache")"; cp scripts/get-pip-standin.py "$cache"
fi
tarball=$(ls "$PWD"/build/dist/gpulab-provision-*.tar.gz)
root=${SANITY_ROOT:-/tmp/gpulab-sanity}
rm -rf "$root" && mkdir -p "$root"
ANSIBLE_COLLECTIONS_PATH="$root" ansible-galaxy collection install --force --offline --no-deps -p "$root" "$tarball" >/dev/null
dest=$root/ansible_collections/gpulab/provision
# The artifact leaves development files out (galaxy.yml build_ignore: tests, molecule, demo, bench,
# scripts). Copy the tracked ones in beside the installed files, never over them, so sanity checks
# the shipped files as installed from the artifact and the development files as before.
# SANITY_ARTIFACT_ONLY=1 checks the installed artifact alone.
if [[ -z ${SANITY_ARTIFACT_ONLY:-} ]]; then
  git ls-files -z | grep -zv -e '^collections/' -e '^playbooks/collections/' -e '^\.ci/' -e '^\.git' \
    | rsync -a --from0 --files-from=- --ignore-existing ./ "$dest/"
fi
cd "$dest"
ansible-test sanity --local --requirements --python 3.11 --color no "$@"
