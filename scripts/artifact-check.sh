#!/usr/bin/env bash
# Check the built collection artifact (build/dist/gpulab-provision-<version>.tar.gz, `make build`):
# it ships what a user runs (every tracked plugin, role, playbook, meta and doc file, the changelog)
# and none of the development tooling galaxy.yml's build_ignore leaves out (tests but tests/sanity,
# molecule, demo, bench, scripts, requirements, local venvs, build output, caches, CI config).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version: *//p' galaxy.yml)
tarball=${DIST:-build/dist}/gpulab-provision-$version.tar.gz
[[ -f $tarball ]] || { echo "artifact-check: $tarball not found (run make build)" >&2; exit 1; }
# Tracked files, less symbolic links (the collections/ links that make a checkout a collection path).
git ls-files -s | awk '$1 != "120000" {sub(/^[^\t]*\t/, ""); print}' >/tmp/gpulab-artifact-tracked.$$
trap 'rm -f /tmp/gpulab-artifact-tracked.$$' EXIT
python3 - "$tarball" "$version" /tmp/gpulab-artifact-tracked.$$ <<'PY'
import fnmatch, json, sys, tarfile
tarball, version, tracked_list = sys.argv[1:]
with tarfile.open(tarball) as tar:
    members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
    names = set(members)
    if "MANIFEST.json" not in members:
        sys.exit(f"artifact-check: {tarball} has no MANIFEST.json (not built by ansible-galaxy?)")
    manifest = json.load(tar.extractfile(members["MANIFEST.json"]))
tracked = [line.strip() for line in open(tracked_list) if line.strip()]
problems = []
# Nothing of the development tooling.
forbidden = ["tests/unit/*", "tests/lab/*", "tests/fixtures/*", "tests/integration/*", "molecule/*",
             "demo/*", "bench/*", "scripts/*", "requirements/*", ".venv*", "build/*", "collections/*",
             ".ci/*", ".git*", "playbooks/collections/*", "*/__pycache__/*", "*.pyc", "Makefile", "ansible.cfg", "pytest.ini",
             ".ansible-lint", ".yamllint", "execution-environment.yml", "*.tar.gz"]
for name in sorted(names):
    hit = next((p for p in forbidden if fnmatch.fnmatch(name, p)), None)
    if hit:
        problems.append(f"ships {name} (matches {hit!r}; add it to galaxy.yml build_ignore)")
# Everything a user runs or reads, as tracked in git.
shipped_dirs = ("plugins/", "roles/", "playbooks/", "meta/", "docs/", "inventories/", "tests/sanity/")
for path in tracked:
    if (path.startswith(shipped_dirs) or path in ("README.md", "CHANGELOG.rst", "changelogs/changelog.yaml")) \
            and not path.endswith(".gitkeep") and path not in names:
        problems.append(f"does not ship {path} (tracked; check galaxy.yml build_ignore)")
for required in ("README.md", "meta/runtime.yml", "changelogs/changelog.yaml", "FILES.json"):
    if required not in names:
        problems.append(f"does not ship {required}")
ci = manifest["collection_info"]
if ci["version"] != version:
    problems.append(f"MANIFEST.json version {ci['version']} != galaxy.yml {version}")
if problems:
    sys.exit("artifact-check: " + tarball + "\n  " + "\n  ".join(problems))
tops = sorted({n.split("/")[0] for n in names})
print(f"artifact-check: {tarball} ok ({len(names)} files: {', '.join(tops)})")
PY
