# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpulab.provision.plugins.module_utils.backups import plan_prune
from ansible_collections.gpulab.provision.plugins.modules import prune_backups

STAMPS = ["2026-11-2%d@10:00:00" % day for day in range(1, 8)]


def run(capsys, args, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            prune_backups.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def etc(tmp_path):
    (tmp_path / "pip.conf").write_text("[global]\n")
    for index, stamp in enumerate(STAMPS):
        (tmp_path / ("pip.conf.%d.%s~" % (100 + index, stamp))).write_text("old %d\n" % index)
        os.utime(tmp_path / ("pip.conf.%d.%s~" % (100 + index, stamp)), (1.7e9 + 3600 * index,) * 2)
    # look-alikes that are not backups of pip.conf
    for name in ("pip.conf.bak", "pip.conf.12.2026-11-21~", "xpip.conf.1.2026-11-21@10:00:00~",
                 "uv.toml.1.2026-11-21@10:00:00~"):
        (tmp_path / name).write_text("mine\n")
    return tmp_path


def test_plan_keeps_the_newest_by_the_files_time_not_by_name_or_pid():
    entries = [("pip.conf.9.%s~" % STAMPS[0], 50), ("pip.conf.1.%s~" % STAMPS[2], 10), ("pip.conf.5.%s~" % STAMPS[1], 99)]
    kept, removed = plan_prune("pip.conf", entries, 2)
    assert kept == ["pip.conf.5.%s~" % STAMPS[1], "pip.conf.9.%s~" % STAMPS[0]]
    assert removed == ["pip.conf.1.%s~" % STAMPS[2]]


@pytest.mark.parametrize("keep", [-1, True, "3"])
def test_plan_refuses_bad_keep(keep):
    with pytest.raises(ValueError, match="keep must be"):
        plan_prune("pip.conf", [], keep)


def test_module_keeps_three_and_touches_nothing_else(etc, capsys):
    rc, result = run(capsys, {"path": str(etc / "pip.conf"), "keep": 3})
    assert rc == 0 and result["changed"] is True
    assert result["kept"] == ["pip.conf.%d.%s~" % (106 - i, STAMPS[6 - i]) for i in range(3)]
    assert len(result["removed"]) == 4
    left = sorted(os.listdir(etc))
    assert left == sorted(["pip.conf", "pip.conf.bak", "pip.conf.12.2026-11-21~", "xpip.conf.1.2026-11-21@10:00:00~",
                           "uv.toml.1.2026-11-21@10:00:00~"] + result["kept"])
    rc, again = run(capsys, {"path": str(etc / "pip.conf"), "keep": 3})
    assert again["changed"] is False and again["removed"] == []


def test_module_check_mode_removes_nothing(etc, capsys):
    before = sorted(os.listdir(etc))
    rc, result = run(capsys, {"path": str(etc / "pip.conf"), "keep": 1}, check_mode=True)
    assert result["changed"] is True and len(result["removed"]) == 6
    assert sorted(os.listdir(etc)) == before


def test_module_missing_directory_is_no_change(tmp_path, capsys):
    rc, result = run(capsys, {"path": str(tmp_path / "nope" / "pip.conf")})
    assert rc == 0 and result == dict(result, changed=False, kept=[], removed=[])


# The order is the files' own time, and what is not a backup file is left alone.

def test_module_a_future_dated_name_does_not_make_the_real_newest_go(etc, capsys):
    for index in range(3):
        future = etc / ("pip.conf.%d.2099-0%d-01@00:00:00~" % (900 + index, index + 1))
        future.write_text("planted\n")
        os.utime(future, (1.6e9,) * 2)
    rc, result = run(capsys, {"path": str(etc / "pip.conf"), "keep": 3})
    assert rc == 0 and result["kept"] == ["pip.conf.%d.%s~" % (106 - i, STAMPS[6 - i]) for i in range(3)]
    assert all("2099" in name for name in result["removed"][-3:])


def test_module_a_directory_or_symlink_named_like_a_backup_is_skipped(etc, capsys):
    (etc / "pip.conf.1.2099-01-01@00:00:00~").mkdir()
    (etc / "pip.conf.1.2099-01-01@00:00:00~" / "inside").write_text("x")
    os.symlink(etc / "pip.conf", etc / "pip.conf.2.2099-01-01@00:00:00~")
    rc, result = run(capsys, {"path": str(etc / "pip.conf"), "keep": 0})
    assert rc == 0 and result["changed"] is True and len(result["removed"]) == 7
    assert (etc / "pip.conf.1.2099-01-01@00:00:00~" / "inside").exists()
    assert os.path.islink(etc / "pip.conf.2.2099-01-01@00:00:00~")


def test_module_a_removal_that_fails_still_reports_the_ones_removed(etc, capsys, monkeypatch):
    real_unlink = os.unlink
    blocked = "pip.conf.100.%s~" % STAMPS[0]

    def unlink(path, *args, **kwargs):
        if os.path.basename(path) == blocked:
            raise PermissionError(1, "Operation not permitted", path)
        return real_unlink(path, *args, **kwargs)
    monkeypatch.setattr(os, "unlink", unlink)
    rc, result = run(capsys, {"path": str(etc / "pip.conf"), "keep": 2})
    monkeypatch.undo()
    assert rc != 0 and result["changed"] is True and len(result["removed"]) == 4
    assert blocked in result["msg"] and "Operation not permitted" in result["msg"]
