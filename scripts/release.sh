#!/usr/bin/env bash
# Release notes and release checks (antsibull-changelog, .venv-tools from scripts/tools-venv.sh).
#   scripts/release.sh notes   the release notes of galaxy.yml's version, made afresh from every
#                              fragment in changelogs/fragments (keep_fragments: true, so they all
#                              stay) and the plugins' and roles' metadata: changelogs/changelog.yaml,
#                              changelogs/.plugin-cache.yaml and CHANGELOG.rst. Run it again until
#                              the version is published: it re-makes that release, nothing else.
#   scripts/release.sh check   (make test) fragments lint, changelog.yaml lints and has a release for
#                              galaxy.yml's version, CHANGELOG.rst is what changelog.yaml generates,
#                              meta/runtime.yml's requires_ansible admits the tested ansible-core.
# `make release` = notes, then the artifact (make build) and its checks (make artifact-check).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
TVENV=${TVENV:-.venv-tools}
[[ $TVENV == /* ]] || TVENV=$PWD/$TVENV
export PATH=$TVENV/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$PWD/collections   # the checkout (its link), for plugin metadata
version=$(sed -n 's/^version: *//p' galaxy.yml)
core=$(sed -n 's/^ansible-core==//p' requirements/dev.txt)

antsibull-changelog lint

case $mode in
notes)
  python3 - "$version" <<'PY'
import sys, yaml
version = sys.argv[1]
path = "changelogs/changelog.yaml"
data = yaml.safe_load(open(path)) or {}
if (data.get("releases") or {}).pop(version, None) is not None:
    print(f"release.sh: re-making the release notes of {version}")
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
PY
  rm -f changelogs/.plugin-cache.yaml
  antsibull-changelog release --version "$version" --reload-plugins
  antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
  echo "release.sh notes: $version in changelogs/changelog.yaml and CHANGELOG.rst"
  ;;
check)
  antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/changelogs"
  cp galaxy.yml CHANGELOG.rst "$tmp/"
  cp changelogs/config.yaml changelogs/changelog.yaml changelogs/.plugin-cache.yaml "$tmp/changelogs/"
  (cd "$tmp" && antsibull-changelog generate >/dev/null)
  diff -u CHANGELOG.rst "$tmp/CHANGELOG.rst" \
    || { echo "release.sh: CHANGELOG.rst is not what changelogs/changelog.yaml generates; run make release" >&2; exit 1; }
  python3 - "$version" "$core" <<'PY'
import sys, yaml
from packaging.specifiers import SpecifierSet
version, core = sys.argv[1:]
releases = (yaml.safe_load(open("changelogs/changelog.yaml")) or {}).get("releases") or {}
if version not in releases:
    sys.exit(f"release.sh: changelogs/changelog.yaml has no release {version} (galaxy.yml); run make release")
spec = (yaml.safe_load(open("meta/runtime.yml")) or {}).get("requires_ansible", "")
if core not in SpecifierSet(spec):
    sys.exit(f"release.sh: meta/runtime.yml requires_ansible {spec!r} does not admit the tested ansible-core {core}")
print(f"release.sh check: {version} released in changelogs/changelog.yaml, CHANGELOG.rst current, "
      f"requires_ansible {spec!r} admits ansible-core {core}")
PY
  ;;
*) echo "usage: $0 notes|check" >&2; exit 2 ;;
esac
