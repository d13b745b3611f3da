#!/usr/bin/env bash
# ansible-test must run inside ansible_collections/<ns>/<name>. Install the built tarball offline
# (which also proves the artifact installs without Galaxy) and run sanity there. ansible-test
# cannot pull its container images on lab CI machines, so it runs with --venv.
set -euo pipefail
cd "$(dirname "$0")/.."
tarball=$(ls build/dist/gpulab-provision-*.tar.gz)
root=build/sanity
rm -rf "$root" && mkdir -p "$root"
ansible-galaxy collection install --offline --no-deps -p "$root" "$tarball" >/dev/null
cd "$root/ansible_collections/gpulab/provision"
ansible-test sanity --venv --python 3.11 --color no "$@"
