# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/report.yml with host and mirror names that are numbers: real ansible-playbook.

A host called 123 or 007 is quoted in a YAML inventory (Ansible refuses a bare number as a host),
but the names reach the report as numbers all the same: ``gpulab_report_hosts: [123]``, a mirror
``name: 123`` in a selection. Every one of them is text in the table, the warnings and the JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
LOCAL = "ansible_connection: local, ansible_python_interpreter: %s" % sys.executable


def run(args, cwd):
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(str(cwd), ".ansible-tmp"))
    return subprocess.run([PLAYBOOK] + args, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=180,
                          check=False)


def test_hosts_and_mirrors_named_by_numbers_are_text_in_the_whole_report(tmp_path):
    (tmp_path / "hosts.yml").write_text(
        "all:\n"
        "  hosts:\n"
        "    '123': {%s}\n"
        "    '007': {%s}\n"
        "    web: {%s}\n"
        "  vars:\n"
        "    gpulab_report_hosts: [123, '007', web]\n"  # 123 is a YAML number here
        "    gpulab_mirrors_selected:\n"
        "      pypi: {name: 123, status: kept, url_masked: 'https://m.example/simple', latency_ms: 12,\n"
        "             ranked: [], rejected: [{name: 456, reason: refused}]}\n" % (LOCAL, LOCAL, LOCAL))
    out = run(["-i", "hosts.yml", os.path.join(ROOT, "playbooks", "report.yml"),
               "-e", "gpulab_report_path=%s" % (tmp_path / "report.json")], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    table = [line.strip().strip('",') for line in out.stdout.splitlines() if " pypi " in line]
    assert [row.split()[:3] for row in table] == [["007", "pypi", "123"], ["123", "pypi", "123"],
                                                  ["web", "pypi", "123"]], out.stdout
    assert out.stdout.count("rejected 456: refused") == 3
    assert "123: pypi: every mirror down, the last good choice kept (123)" in out.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert sorted(report) == ["007", "123", "web"]
