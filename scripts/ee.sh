#!/usr/bin/env bash
# The execution environment (execution-environment.yml, ansible-builder v3).
#   scripts/ee.sh check   `ansible-builder create` into build/ee/context, then check that context:
#                         base image, ansible-core = the tested pin, the venv interpreter, the
#                         collection = this checkout's artifact at galaxy.yml's version, offline pip.
#   scripts/ee.sh image   check, download the wheelhouse (PyPI, on this machine), build the image
#                         with docker (offline inside), then run the collection's docs in it.
# Needs the artifact (make build) and .venv-tools (scripts/tools-venv.sh); `make ee-check` and
# `make ee-image` provide both.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
TVENV=${TVENV:-.venv-tools}
[[ $TVENV == /* ]] || TVENV=$PWD/$TVENV
export PATH=$TVENV/bin:$PATH
version=$(sed -n 's/^version: *//p' galaxy.yml)
core=$(grep -E '^ansible-core==' requirements/dev.txt)
ctx=build/ee/context
tag=gpulab/provision-ee:$version

[[ -f build/dist/gpulab-provision-$version.tar.gz ]] \
  || { echo "ee.sh: build/dist/gpulab-provision-$version.tar.gz missing (make build)" >&2; exit 1; }
mkdir -p build/ee-wheels   # filled by `image`; may be empty for `check`
rm -rf "$ctx"
ansible-builder create -f execution-environment.yml -c "$ctx" --output-filename Containerfile >/dev/null

python3 - "$ctx" "$version" "$core" "$tag" <<'PY'
import hashlib, pathlib, re, sys
ctx, version, core, tag = sys.argv[1:]
ctx = pathlib.Path(ctx)
cf = (ctx / "Containerfile").read_text()
reqs = (ctx / "_build" / "requirements.yml").read_text()
ee = pathlib.Path("execution-environment.yml").read_text()
tarball = f"gpulab-provision-{version}.tar.gz"
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
need('ARG EE_BASE_IMAGE="gpulab/debian:bookworm"' in cf, "base image is not gpulab/debian:bookworm")
refs = re.search(r'ARG ANSIBLE_INSTALL_REFS="([^"]*)"', cf)
need(refs and core in refs.group(1).split(), f"ansible-core in the EE is not {core} (requirements/dev.txt)")
need(refs and any(r.startswith("ansible-runner==") for r in refs.group(1).split()), "ansible-runner is not pinned")
need('ARG PYCMD="/opt/ee/bin/python3"' in cf, "PYCMD is not the /opt/ee venv")
need("RUN python3 -m venv /opt/ee" in cf and "ENV PATH=/opt/ee/bin:$PATH" in cf, "the /opt/ee venv is not created/on PATH")
need("no-index = true" in cf and "find-links = /opt/ee-wheels" in cf, "pip in the build is not offline (wheelhouse)")
need("rm -rf /opt/ee-wheels /etc/pip.conf" in cf, "the wheelhouse and its pip.conf stay in the final image")
need(re.search(r"ansible-galaxy collection install .*-r requirements.yml", cf), "no collection install step")
need(f"name: collections/{tarball}" in reqs and "type: file" in reqs, f"requirements.yml does not install collections/{tarball}")
need(f"- {tag}" in ee, f"the image tag in execution-environment.yml is not {tag}")
shipped = ctx / "_build" / "collections" / tarball
built = pathlib.Path("build/dist") / tarball
need(shipped.is_file() and hashlib.sha256(shipped.read_bytes()).digest() == hashlib.sha256(built.read_bytes()).digest(),
     f"_build/collections/{tarball} is not build/dist/{tarball}")
need((ctx / "_build" / "wheels").is_dir(), "the wheelhouse is not in the context")
if problems:
    sys.exit(f"ee.sh check: {ctx}:\n  " + "\n  ".join(problems))
print(f"ee.sh check: {ctx}/Containerfile ok (gpulab/debian:bookworm, {core}, {tarball}, offline pip)")
PY
[[ $mode == check ]] && exit 0
[[ $mode == image ]] || { echo "usage: $0 check|image" >&2; exit 2; }

# The wheelhouse: every wheel the build installs, for the image's CPython 3.11 on x86_64.
refs=$(sed -n 's/^ARG ANSIBLE_INSTALL_REFS="\(.*\)"$/\1/p' "$ctx/Containerfile")
rm -rf build/ee-wheels && mkdir -p build/ee-wheels
# shellcheck disable=SC2086  # refs is a list of requirement specifiers
"$TVENV/bin/pip" download -q --disable-pip-version-check --only-binary :all: \
  --python-version 3.11 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  -d build/ee-wheels $refs bindep pyyaml packaging 'dumb-init==1.2.5' setuptools wheel
rm -rf "$ctx"
t0=$SECONDS
ansible-builder build -f execution-environment.yml -c "$ctx" --output-filename Containerfile \
  --container-runtime docker -t "$tag" -v 2 >build/ee/build.log 2>&1 \
  || { tail -40 build/ee/build.log >&2; exit 1; }
echo "ee.sh image: built $tag in $((SECONDS - t0)) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'))"
# The image answers as an EE would be used: ansible-core at the tested version, the collection's docs.
docker run --rm "$tag" ansible --version >build/ee/run.log
docker run --rm "$tag" ansible-doc -t module gpulab.provision.mirror_probe >>build/ee/run.log
docker run --rm "$tag" ansible-galaxy collection list gpulab.provision >>build/ee/run.log
for want in "^ansible \[core ${core#ansible-core==}\]" "gpulab.provision.mirror_probe" "gpulab.provision *$version"; do
  grep -q "$want" build/ee/run.log \
    || { cat build/ee/run.log >&2; echo "ee.sh image: $tag does not answer as expected ($want)" >&2; exit 1; }
done
echo "ee.sh image: $tag runs ansible-core ${core#ansible-core==} with gpulab.provision $version"
