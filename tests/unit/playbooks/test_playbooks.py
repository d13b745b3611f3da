# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks as an operator runs them: by collection name, from any directory, with dead hosts.

Real ansible-playbook runs against a local-connection host and hosts on loopback ports where nothing
listens (ssh is refused at once): no container, no network beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def run(args, cwd, collections=None):
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=collections or os.path.join(ROOT, "collections"),
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(str(cwd), ".ansible-tmp"))
    return subprocess.run([PLAYBOOK] + args, cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def inventory(tmp_path, hosts):
    lines = ["all:", "  hosts:"]
    for name, variables in hosts.items():
        lines.append("    %s: {%s}" % (name, ", ".join("%s: %s" % item for item in variables.items())))
    path = tmp_path / "hosts.yml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
DEAD = {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_ssh_common_args": "'-o ConnectTimeout=5'"}


def second_play(tmp_path, reach="reachable.yml"):
    path = tmp_path / "play.yml"
    path.write_text(
        "- ansible.builtin.import_playbook: %s/playbooks/%s\n"
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: second play on {{ inventory_hostname }}"
        " ({{ ansible_facts.distribution | default('no facts') }})\n" % (ROOT, reach))
    return str(path)


# reachable.yml (failover.yml) reaches with one shell command; reachable_facts.yml (site.yml) with
# the fact gathering the later plays use.
@pytest.mark.parametrize("reach", ["reachable.yml", "reachable_facts.yml"])
def test_unreachable_hosts_are_named_once_and_left_out(tmp_path, reach):
    hosts = inventory(tmp_path, {"alive": LOCAL, "dead1": DEAD, "dead2": DEAD})
    out = run(["-i", hosts, second_play(tmp_path, reach)], tmp_path)
    assert "dead1: unreachable, left out of this run" in out.stdout, out.stdout + out.stderr
    assert "dead2: unreachable, left out of this run" in out.stdout
    assert "1 host(s) go on" in out.stdout
    assert "second play on alive (%s)" % ("no facts" if reach == "reachable.yml" else "Debian") in out.stdout
    assert "second play on dead" not in out.stdout
    assert out.returncode != 0  # the dead hosts count as failed in the recap


@pytest.mark.parametrize("reach", ["reachable.yml", "reachable_facts.yml"])
def test_a_run_where_no_host_answers_stops_at_once(tmp_path, reach):
    hosts = inventory(tmp_path, {"dead1": DEAD, "dead2": DEAD})
    out = run(["-i", hosts, second_play(tmp_path, reach)], tmp_path)
    assert "no host of this run answered: stopping" in out.stdout, out.stdout + out.stderr
    assert "second play on" not in out.stdout
    assert out.returncode != 0


@pytest.mark.parametrize("name", ["gpulab.provision.site", "gpulab.provision.failover", "gpulab.provision.report",
                                  "gpulab.provision.validate"])
def test_collection_playbooks_resolve_by_name(tmp_path, name):
    out = run(["-i", os.path.join(ROOT, "inventories", "example"), name, "--syntax-check"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", ["site.yml", "playbooks/failover.yml", "playbooks/report.yml"])
def test_checkout_playbooks_run_from_any_directory(tmp_path, path):
    """No ansible.cfg, no collections path: the links beside the playbooks find the collection."""
    out = run(["-i", os.path.join(ROOT, "inventories", "example"), os.path.join(ROOT, path), "--syntax-check"],
              tmp_path, collections=str(tmp_path / "nothing-here"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_report_file_writes_on_the_controller_atomically_and_honours_check_mode(tmp_path):
    hosts = inventory(tmp_path, {"alive": LOCAL})
    dest = tmp_path / "out" / "report.json"
    (tmp_path / "out").mkdir()
    play = tmp_path / "report_file.yml"
    play.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - gpulab.provision.report_file:\n        content: '{{ text }}'\n        dest: %s\n      register: r\n"
        "    - ansible.builtin.debug:\n        msg: 'changed={{ r.changed }} dest={{ r.dest }}'\n" % dest)
    check = run(["-i", hosts, str(play), "-e", "text=one", "--check", "--diff"], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "changed=True" in check.stdout and "+one" in check.stdout and not dest.exists()
    first = run(["-i", hosts, str(play), "-e", "text=one"], tmp_path)
    assert first.returncode == 0 and "changed=True" in first.stdout and dest.read_text() == "one"
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    again = run(["-i", hosts, str(play), "-e", "text=one"], tmp_path)
    assert "changed=False" in again.stdout and dest.read_text() == "one"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.json"]  # no temporary file left
    play.write_text(play.read_text().replace(str(dest), str(tmp_path / "nodir" / "r.json")))
    nodir = run(["-i", hosts, str(play), "-e", "text=one"], tmp_path)
    assert nodir.returncode != 0 and "does not exist; create it or set another path" in nodir.stdout
