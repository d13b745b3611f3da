#!/usr/bin/env bash
# Create .venv with the pinned toolchain and the three collections Molecule's docker driver needs,
# taken out of the `ansible` wheel on PyPI (Ansible Galaxy is not reachable from lab CI machines).
# Re-runs are cheap: a stamp holds the hash of the inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
ANSIBLE_WHEEL_VERSION=12.3.0
COLLECTIONS=(community/docker community/library_inventory_filtering_v1 ansible/posix)
stamp="$VENV/.gpulab-stamp"
want=$(cat requirements/dev.txt "$0" | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then exit 0; fi

PY=${PYTHON:-python3}
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements/dev.txt

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" "ansible==$ANSIBLE_WHEEL_VERSION"
dest="$VENV/collections/ansible_collections"
mkdir -p "$dest"
for c in "${COLLECTIONS[@]}"; do
  "$VENV/bin/python" - "$tmp"/ansible-*.whl "ansible_collections/$c/" "$VENV/collections" <<'PY'
import sys, zipfile
wheel, prefix, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix)]
    if not names:
        sys.exit(f"venv.sh: {prefix} not found in {wheel}")
    z.extractall(out, names)
PY
done
echo "$want" > "$stamp"
echo "venv.sh: $VENV ready ($("$VENV/bin/ansible" --version | head -1))"
