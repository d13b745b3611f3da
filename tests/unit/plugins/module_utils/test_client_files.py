# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""client_files: how failover.yml's one call and the watcher write the client files."""
from __future__ import annotations

import os

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import client_files
from ansible_collections.gpulab.provision.plugins.module_utils.backups import backup_pattern, prune
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import RenderError

SEL = {"status": "ok", "name": "b", "url": "https://b.example/simple",
       "ranked": [{"name": "b", "url": "https://b.example/simple"}]}


def test_backup_name_is_the_one_ansible_gives_and_prune_knows():
    name = client_files.backup_name("/etc/pip.conf", pid=42, when=0)
    assert backup_pattern("pip.conf").match(os.path.basename(name))


def test_write_file_replaces_atomically_with_mode_and_backup(tmp_path):
    path = tmp_path / "pip.conf"
    path.write_text("old\n")
    saved = client_files.write_file(str(path), "new\n", 0o640, "root", backup=True)
    assert path.read_text() == "new\n" and path.stat().st_mode & 0o777 == 0o640
    with open(saved, encoding="utf-8") as handle:
        assert handle.read() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".gpulab.")) == []


def test_a_rejected_file_is_never_put_in_place(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("{}\n")
    with pytest.raises(RenderError, match="rejected .unknown key.; the old one is kept"):
        client_files.write_file(str(path), '{"bad": 1}\n', validate=lambda tmp: "unknown key", backup=True)
    assert path.read_text() == "{}\n" and [p.name for p in tmp_path.iterdir()] == ["daemon.json"]


def test_an_unknown_credentials_group_is_named(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root sets a group")
    with pytest.raises(RenderError, match="group 'no-such-group-x' does not exist"):
        client_files.write_file(str(tmp_path / "f"), "x", 0o640, "no-such-group-x")
    assert not (tmp_path / "f").exists()


def test_prune_keeps_the_newest(tmp_path):
    path = tmp_path / "pip.conf"
    path.write_text("x")
    for stamp in ("2026-01-01@00:00:00", "2026-03-01@00:00:00", "2026-02-01@00:00:00"):
        (tmp_path / ("pip.conf.1.%s~" % stamp)).write_text(stamp)
    (tmp_path / "pip.conf.notes").write_text("not a backup")
    kept, removed = prune(str(path), 1)
    assert kept == ["pip.conf.1.2026-03-01@00:00:00~"]
    assert sorted(removed) == ["pip.conf.1.2026-01-01@00:00:00~", "pip.conf.1.2026-02-01@00:00:00~"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pip.conf", "pip.conf.1.2026-03-01@00:00:00~", "pip.conf.notes"]


@pytest.mark.parametrize("client,path,dirs,expected", [
    ("pip_conf", "/etc/pip.conf", set(), True),
    ("condarc", "/opt/conda/.condarc", set(), False),
    ("condarc", "/opt/conda/.condarc", {"/opt/conda"}, True),
    ("hosts_toml", "/etc/containerd/certs.d/docker.io/hosts.toml", set(), False),
    ("hosts_toml", "/etc/containerd/certs.d/docker.io/hosts.toml", {"/etc/containerd"}, True),
])
def test_what_a_role_would_create(client, path, dirs, expected):
    assert client_files.would_create(client, path, dirs.__contains__) is expected


def test_plan_files_creates_only_with_a_healthy_choice_and_when_asked(tmp_path):
    entry = {"client": "pip_conf", "path": str(tmp_path / "pip.conf"), "options": {}}
    plan, = client_files.plan_files([entry], SEL, [], create=True)
    assert plan["missing"] and plan["result"]["changed"]
    plan, = client_files.plan_files([entry], SEL, [], create=False)
    assert plan["result"] is None and plan["error"] is None
    plan, = client_files.plan_files([entry], {"status": "kept", "name": "a"}, [], create=True)
    assert plan["result"] is None


def test_apply_plans_in_check_mode_writes_nothing(tmp_path):
    entry = {"client": "pip_conf", "path": str(tmp_path / "sub" / "pip.conf"), "options": {}}
    plans = client_files.plan_files([entry], SEL, [], create=True)
    done = client_files.apply_plans(plans, check=True, diff=True)
    assert done["written"] == [entry["path"]] and not (tmp_path / "sub").exists()
    assert "index-url = https://b.example/simple" in done["diffs"][0]["after"]
    done = client_files.apply_plans(plans)
    assert (tmp_path / "sub" / "pip.conf").stat().st_mode & 0o777 == 0o644
    assert done["backups"] == []  # nothing to back up: the file was new
