# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""failover.yml's fast path: the choice and the local fact as mirror_select makes them; pending files."""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils import config_merge
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import render_client_config
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import watch_config
from ansible_collections.gpulab.provision.plugins.module_utils.watch_select import pending_files, select_services

MIRRORS = {"pypi": [{"name": "a", "url": "https://a.example/simple"}, {"name": "b", "url": "https://b.example/simple"}],
           "conda": [{"name": "t", "url": "https://t.example/anaconda"}]}
SERVICES = {"pypi": {"kind": "pypi"}, "conda": {"kind": "conda"}}


def answer(**health):
    return {"results": [{"name": n, "healthy": h, "latency_ms": 3 if h else None, "reason": None if h else "refused"}
                        for n, h in health.items()]}


def test_kept_and_none_keep_the_previous_fact_entry():
    previous = {"pypi": {"name": "a", "status": "ok", "url_masked": "https://a.example/simple"}}
    got = select_services({"pypi": answer(a=False, b=False), "conda": answer(t=False)}, MIRRORS,
                          {"on_all_down": "keep"}, None, previous)
    assert got["selected"]["pypi"]["status"] == "kept" and got["selected"]["conda"]["status"] == "none"
    assert got["fact"] == previous and got["down"] == ["conda"]


def test_a_switch_is_recorded_like_mirror_select_does():
    got = select_services({"pypi": answer(a=False, b=True)}, MIRRORS, {}, {"pypi": "a"}, {})
    assert got["selected"]["pypi"]["status"] == "pin_unhealthy"
    assert got["fact"] == {"pypi": {"name": "b", "status": "pin_unhealthy", "url_masked": "https://b.example/simple"}}


def test_pending_lists_only_files_whose_bytes_would_change(tmp_path):
    watched = watch_config(MIRRORS, SERVICES, clients={
        "pip": {"conf_path": str(tmp_path / "pip.conf"), "uv_conf_path": str(tmp_path / "uv" / "uv.toml")},
        "conda": {"condarc_path": str(tmp_path / "conda" / ".condarc")}})["config"]["services"]
    selected = select_services({"pypi": answer(a=True, b=True), "conda": answer(t=True)}, MIRRORS, {})["selected"]
    files = {str(tmp_path / "pip.conf"): render_client_config("", "pip_conf", selected["pypi"],
                                                              {"timeout": 10, "retries": 2})["content"]}

    def read(path):
        return files.get(path)

    got = pending_files(watched, selected, read, lambda path: False)
    # pip.conf already right; uv.toml missing (pip_mirror creates it); no conda prefix: conda_mirror skips it.
    assert got == {"pip_mirror": [{"path": str(tmp_path / "uv" / "uv.toml"), "client": "uv_toml", "reason": "missing"}]}
    assert "conda_mirror" in pending_files(watched, selected, read, lambda path: path == str(tmp_path / "conda"))


def test_a_condarc_that_cannot_be_rendered_here_leaves_it_to_the_role(tmp_path, monkeypatch):
    watched = watch_config(MIRRORS, SERVICES, only=["conda"])["config"]["services"]
    selected = select_services({"conda": answer(t=True)}, MIRRORS, {})["selected"]
    monkeypatch.setattr(config_merge, "yaml", None)
    got = pending_files(watched, selected, lambda path: "channel_alias: x\n", lambda path: True)
    assert "PyYAML" in got["conda_mirror"][0]["reason"]
