# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mirror_probe_all and the lock it shares with gpulab-mirror-watch.

A lock it may not use (another user's file, a world-writable directory such as /run/lock, the
default before 1.3.0) is refused: nothing is written, the run does not fail, and ``deferred`` says
why (failover.yml's report lists it as a warning).
"""
from __future__ import annotations

import json
import os

import pytest

from mirror_servers import pypi_mirror

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpulab.provision.plugins.modules import mirror_probe_all


def run_module(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            mirror_probe_all.main()
    out = capsys.readouterr().out
    return exit_info.value.code != 0, json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def args(servers, tmp_path):
    good = pypi_mirror(servers())
    return {"mirrors": {"pypi": [{"name": "good", "url": good.url + "/simple", "insecure": True}]},
            "services": {"pypi": {"kind": "pypi", "project": "pip"}}, "policy": {"timeout_s": 2},
            "clients": {"pip": {"conf_path": str(tmp_path / "pip.conf"), "manage_uv": False}},
            "fact_path": str(tmp_path / "gpulab_mirrors.fact"), "write": True, "lock_wait_s": 1}


def test_the_default_lock_is_in_run_gpulab():
    assert mirror_probe_all.DOCUMENTATION.count("default: /run/gpulab/mirrors.lock") == 1
    assert "/run/lock/gpulab-mirrors.lock\n" not in mirror_probe_all.DOCUMENTATION


def test_a_lock_in_a_world_writable_directory_defers_the_switch_and_writes_nothing(args, tmp_path, capsys, monkeypatch):
    # AnsibleModule.warn returns the warning or displays it (controller code loaded): record what is asked
    seen = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda _self, warning, **_kw: seen.append(warning))
    shared = tmp_path / "lock"
    shared.mkdir()
    shared.chmod(0o1777)
    failed, result = run_module(capsys, dict(args, lock_path=str(shared / "gpulab-mirrors.lock")))
    assert not failed, result
    why = ("the lock directory %s is group- or world-writable (mode 1777), so another user can create or replace the "
           "lock; use a directory only root writes, such as /run/gpulab" % shared)
    assert result["deferred"] == why and result["changed"] is False and result["written"] == []
    assert "switch deferred: %s" % why in result["notes"]
    assert seen == ["switch deferred, nothing written: " + why]
    assert not (tmp_path / "pip.conf").exists() and not (tmp_path / "gpulab_mirrors.fact").exists()
    assert list(shared.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create another user's file")
def test_a_lock_file_another_user_created_defers_record_too(args, tmp_path, capsys):
    lock = tmp_path / "mirrors.lock"
    lock.write_text("")
    os.chown(str(lock), 65534, 65534)
    failed, result = run_module(capsys, dict(args, write=False, record=True, lock_path=str(lock)))
    assert not failed and result["changed"] is False
    assert result["deferred"].startswith("the lock file %s is owned by uid 65534, not root" % lock)
    assert not (tmp_path / "gpulab_mirrors.fact").exists()


def test_a_safe_lock_is_created_0600_in_a_0755_directory_and_the_files_written(args, tmp_path, capsys):
    lock = tmp_path / "run" / "gpulab" / "mirrors.lock"
    failed, result = run_module(capsys, dict(args, lock_path=str(lock)))
    assert not failed and result["deferred"] is None and result["written"] == [str(tmp_path / "pip.conf")]
    assert oct(lock.stat().st_mode & 0o777) == "0o600" and oct(lock.parent.stat().st_mode & 0o777) == "0o755"
