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
    # look-alikes that are not backups of pip.conf
    for name in ("pip.conf.bak", "pip.conf.12.2026-11-21~", "xpip.conf.1.2026-11-21@10:00:00~",
                 "uv.toml.1.2026-11-21@10:00:00~"):
        (tmp_path / name).write_text("mine\n")
    return tmp_path


def test_plan_keeps_the_newest_by_stamp_not_by_pid():
    entries = [("pip.conf.9.%s~" % STAMPS[0], 50), ("pip.conf.1.%s~" % STAMPS[2], 10), ("pip.conf.5.%s~" % STAMPS[1], 99)]
    kept, removed = plan_prune("pip.conf", entries, 2)
    assert kept == ["pip.conf.1.%s~" % STAMPS[2], "pip.conf.5.%s~" % STAMPS[1]]
    assert removed == ["pip.conf.9.%s~" % STAMPS[0]]


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
