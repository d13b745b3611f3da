# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror filters are thin glue: right names, same answers, errors name the filter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.filter.mirrors import FilterModule

FILTERS = FilterModule().filters()
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
NAMES = {"pick_mirror", "rank_mirrors", "mirror_selection", "mirror_catalog_errors", "mirror_report", "mirror_probe_args",
         "selection_urls"}


def result(name, healthy=True, latency_ms=10):
    return {"name": name, "url": "https://%s.example" % name, "healthy": healthy, "latency_ms": latency_ms,
            "http_status": 200, "reason": None if healthy else "connection refused", "serial": None}


def test_every_filter_is_exported():
    assert set(FILTERS) == NAMES


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_filter_has_its_doc_file(name):
    with open(os.path.join(ROOT, "plugins", "filter", name + ".yml"), encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    assert doc["DOCUMENTATION"]["name"] == name
    assert doc["EXAMPLES"] and doc["RETURN"]["_value"]


def test_pick_mirror_filter_takes_keyword_options():
    results = [result("a", latency_ms=90), result("b", latency_ms=5)]
    assert FILTERS["pick_mirror"](results, strategy="fastest")["name"] == "b"


def test_pick_mirror_filter_error_names_the_filter():
    with pytest.raises(AnsibleFilterError, match=r"^gpulab\.provision\.pick_mirror: strategy 'nope' is unknown"):
        FILTERS["pick_mirror"]([result("a")], strategy="nope")


def test_rank_mirrors_filter_error_names_the_filter():
    with pytest.raises(AnsibleFilterError, match=r"^gpulab\.provision\.rank_mirrors: results must be the list"):
        FILTERS["rank_mirrors"]("not a list")


def test_mirror_selection_filter_error_names_the_filter():
    with pytest.raises(AnsibleFilterError, match=r"^gpulab\.provision\.mirror_selection: on_all_down"):
        FILTERS["mirror_selection"]([result("a")], [{"name": "a", "url": "https://a.example"}], {"on_all_down": "x"})


def test_mirror_catalog_errors_filter_returns_messages():
    assert FILTERS["mirror_catalog_errors"]({"pypi": []}, {"pypi": {"kind": "pypi"}}) == [
        "gpulab_mirrors.pypi: empty list; list at least one mirror or remove the service"]


def test_mirror_report_filter_rejects_unknown_output():
    with pytest.raises(AnsibleFilterError, match=r"^gpulab\.provision\.mirror_report: output 'html' is unknown"):
        FILTERS["mirror_report"]({}, output="html")


def test_mirror_report_filter_data_output_is_a_dict():
    assert FILTERS["mirror_report"]({"h": {"gpulab_report_x": {"changed": False, "summary": "s"}}}, output="data") == {
        "h": {"mirrors_selected": {}, "reports": {"x": {"changed": False, "summary": "s"}}}}


def test_filters_resolve_by_fqcn_in_a_real_template(tmp_path):
    """Ansible itself loads the plugin and its docs: the FQCN works from a checkout."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.assert:\n"
        "        that: (r | gpulab.provision.pick_mirror(strategy='fastest')).name == 'b'\n"
        "      vars:\n"
        "        r: [{name: a, healthy: true, latency_ms: 9}, {name: b, healthy: true, latency_ms: 2}]\n")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), PY_COLORS="0",
               ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([os.path.join(ROOT, "collections"),
                                                         os.path.join(ROOT, ".venv", "collections")]))
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run([binary, "-i", "localhost,", "-c", "local", str(playbook)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("site", ["site_beijing", "site_shanghai"])
def test_example_inventory_catalog_is_valid_for_every_site(site):
    """inventories/example passes the role's preflight (read from the files; nothing is probed)."""
    base = os.path.join(ROOT, "inventories", "example")
    merged = {}
    for path in (os.path.join(base, "group_vars", "all", "mirrors.yml"), os.path.join(base, "group_vars", site, "mirrors.yml")):
        with open(path, encoding="utf-8") as handle:
            merged.update(yaml.safe_load(handle) or {})
    with open(os.path.join(base, "host_vars", "gpu-bj-02.yml"), encoding="utf-8") as handle:
        pin = yaml.safe_load(handle)["gpulab_mirror_pin"]
    errors = FILTERS["mirror_catalog_errors"](merged["gpulab_mirrors"], merged["gpulab_mirror_services"],
                                              policy=merged["gpulab_mirror_policy"], pin=pin)
    assert errors == []
