# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/report.yml with a cache node every client rejected: real ansible-playbook.

The node served on itself (its role's report is there) but its advertised name did not resolve on
the clients, so each fell back to a public mirror. That is a line in the run's warnings, and
gpulab_fail_on_warning fails the run on it; with one client on the node there is nothing to say.
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
LOCAL = "ansible_connection: local, ansible_python_interpreter: %s" % sys.executable

REJECTED = ("{name: tuna, status: ok, url_masked: 'https://t.example/simple', latency_ms: 40, ranked: [{name: tuna}],"
            " rejected: [{name: cache-cache1, reason: 'connection failed: name does not resolve',"
            " url_masked: 'http://cache1:3141/root/pypi/+simple'}]}")
USES = "{name: cache-cache1, status: ok, url_masked: 'http://cache1:3141/root/pypi/+simple', ranked: [{name: cache-cache1}]}"


def inventory(tmp_path, gpu2_pypi):
    (tmp_path / "hosts.yml").write_text(
        "all:\n"
        "  hosts:\n"
        "    cache1: {%s, gpulab_mirrors_selected: {}, gpulab_report_cache_node: {changed: false, upstreams: {pypi: 'https://t.example/simple'}}}\n"
        "    gpu1: {%s, gpulab_mirrors_selected: {pypi: %s}}\n"
        "    gpu2: {%s, gpulab_mirrors_selected: {pypi: %s}}\n" % (LOCAL, LOCAL, REJECTED, LOCAL, gpu2_pypi))


def report(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(str(tmp_path), ".ansible-tmp"))
    return subprocess.run([PLAYBOOK, "-i", "hosts.yml", os.path.join(ROOT, "playbooks", "report.yml"),
                           "-e", "gpulab_fail_on_warning=true", "-e", "gpulab_report_path=%s" % (tmp_path / "report.json")],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=180, check=False)


def test_a_cache_node_no_client_reaches_fails_the_run_with_gpulab_fail_on_warning(tmp_path):
    inventory(tmp_path, REJECTED)
    out = report(tmp_path)
    assert out.returncode != 0, out.stdout + out.stderr
    assert ("cache1: cache_node: serves on itself, but every client rejected it (gpu1, gpu2: connection failed: name"
            " does not resolve); they tried http://cache1:3141/root/pypi/+simple") in out.stdout, out.stdout
    assert "set cache_node_advertise_address to a name or address the clients resolve and reach" in out.stdout
    assert "1 warning(s) and gpulab_fail_on_warning is true" in out.stdout


def test_one_client_on_the_node_is_no_warning(tmp_path):
    inventory(tmp_path, USES)
    out = report(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No warnings." in out.stdout and "fell back: gpu1 (on tuna)" in out.stdout, out.stdout
