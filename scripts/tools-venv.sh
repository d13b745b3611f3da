#!/usr/bin/env bash
# Create .venv-tools: antsibull-docs (make docs), antsibull-changelog (make release), ansible-builder
# (make ee-check / ee-image), with ansible-core at the version requirements/dev.txt pins. A venv of
# its own: rebuilding it never touches the test toolchain in .venv. Re-runs are cheap (a stamp holds
# the hash of the inputs).
set -euo pipefail
cd "$(dirname "$0")/.."
TVENV=${TVENV:-.venv-tools}
core=$(grep -E '^ansible-core==' requirements/dev.txt)
stamp="$TVENV/.gpulab-stamp"
want=$( { cat requirements/tools.txt "$0"; echo "$core"; } | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then exit 0; fi
rm -rf "$TVENV"
"${PYTHON:-python3}" -m venv "$TVENV"
"$TVENV/bin/pip" install -q --disable-pip-version-check -r requirements/tools.txt "$core"
echo "$want" > "$stamp"
echo "tools-venv.sh: $TVENV ready (antsibull-docs $("$TVENV/bin/antsibull-docs" --version), ansible-builder $("$TVENV/bin/ansible-builder" --version))"
