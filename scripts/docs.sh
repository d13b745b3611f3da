#!/usr/bin/env bash
# The documentation site: antsibull-docs renders every module, filter and role (argument_specs) of
# the collection plus the guides in docs/docsite/ (extra-docs.yml), Sphinx makes the HTML.
#   scripts/docs.sh lint    antsibull-docs lint-collection-docs (plugin docs, RST, references)
#   scripts/docs.sh build   HTML into build/docs/html (sources in build/docs/src), warnings fail it
# Uses .venv-tools (scripts/tools-venv.sh; `make docs` / `make docs-lint` provide it) and the
# checkout itself as the collection (collections/ansible_collections/gpulab/provision links here).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-build}
TVENV=${TVENV:-.venv-tools}
[[ $TVENV == /* ]] || TVENV=$PWD/$TVENV
export PATH=$TVENV/bin:$PATH
export ANSIBLE_COLLECTIONS_PATH=$PWD/collections
coll=$PWD/collections/ansible_collections/gpulab/provision

case $mode in
lint)
  antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs \
    --validate-collection-refs self "$coll"
  echo "docs.sh lint: antsibull-docs lint-collection-docs clean"
  ;;
build)
  src=build/docs/src
  rm -rf build/docs && mkdir -p build/docs && mkdir -m 0755 "$src"
  antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --dest-dir "$src" \
    --project gpulab.provision --copyright "gpulab.provision maintainers" \
    --title "gpulab.provision" --html-short-title "gpulab.provision" gpulab.provision >/dev/null
  cat scripts/docs_conf_extra.py >>"$src/conf.py"
  # The collection is installed from its artifact, not from Galaxy: say so on every plugin page,
  # and link "gpulab.provision collection" to this site's own index.
  version=$(sed -n 's/^version: *//p' galaxy.yml)
  python3 - "$src/antsibull-docs.cfg" "$version" <<'PY'
import re, sys
path, version = sys.argv[1:]
cfg = open(path).read()
cfg = re.sub(r'collection_url = \{\n.*?\n\}', 'collection_url = {\n  * = "index.html"\n}', cfg)
cfg = re.sub(r'collection_install = \{\n.*?\n\}',
             f'collection_install = {{\n  * = "ansible-galaxy collection install --offline gpulab-provision-{version}.tar.gz"\n}}', cfg)
open(path, "w").write(cfg)
PY
  # build.sh: antsibull-docs collection --fail-on-error (RST), then sphinx-build -W --keep-going.
  sed -i 's/^    collection \\$/    collection --fail-on-error \\/' "$src/build.sh"
  (cd "$src" && ./build.sh) >build/docs/build.log 2>&1 || { grep -E 'WARNING|ERROR' build/docs/build.log >&2 || tail -30 build/docs/build.log >&2; exit 1; }
  mv "$src/build/html" build/docs/html
  echo "docs.sh build: build/docs/html/index.html ($(find build/docs/html -name '*.html' | wc -l) pages)"
  ;;
*) echo "usage: $0 lint|build" >&2; exit 2 ;;
esac
