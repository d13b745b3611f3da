# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_report: gpulab_report_image_preload from what the role's loops
registered (what report.yml computed in Jinja)."""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_report as ia_report

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def item(name, **kw):
    return dict({"name": name, "refs": ["lab/%s:1" % name], "staged": "/var/lib/gpulab/images/%s.tar" % name}, **kw)


def test_loaded_skipped_present_staged_downloaded_removed():
    load = {"results": [
        {"item": item("app"), "changed": True, "images": [
            {"id": A, "tags": ["lab/app:1"], "action": "loaded", "retagged": ["mirror/lab/app:1"]}]},
        {"item": item("data"), "changed": False, "images": [
            {"id": B, "tags": ["lab/data:1"], "action": "skipped", "retagged": []}]},
    ]}
    entries = [item("app", present=False), item("data", present=False), item("tools", id=C, present=True)]
    copied = {"results": [{"item": item("app"), "changed": True}, {"item": item("data"), "changed": False}]}
    downloaded = {"results": [{"item": item("web"), "changed": True, "msg": "downloaded http://***@files/web.tar (resumed at byte 9)"},
                              {"item": item("old"), "changed": False, "msg": "/x already has sha256:..."}]}
    removed = {"results": [{"item": item("app"), "changed": True}, {"item": item("gone"), "changed": False}]}
    r = ia_report.preload_report(load, entries, engine="docker", copied=copied, downloaded=downloaded, removed=removed)
    assert r["loaded"] == [{"name": "app", "action": "loaded", "id": A, "tags": ["lab/app:1"], "retagged": ["mirror/lab/app:1"]}]
    assert r["skipped"] == [
        {"name": "data", "action": "skipped", "id": B, "tags": ["lab/data:1"], "retagged": []},
        {"name": "tools", "action": "skipped", "id": C, "tags": ["lab/tools:1"], "retagged": [],
         "note": "present with every name; archive not staged"},
    ]
    assert r["staged"] == ["app", "web"]
    assert r["downloads"] == ["downloaded http://***@files/web.tar (resumed at byte 9)", "/x already has sha256:..."]
    assert r["removed"] == ["/var/lib/gpulab/images/app.tar"]
    assert r["changed"] is True and r["engine"] == "docker"
    assert r["summary"] == ("1 image(s) loaded, 2 already present (docker), staged: app, web, "
                            "removed: /var/lib/gpulab/images/app.tar")


def test_nothing_to_do_is_unchanged():
    load = {"results": [{"item": item("app"), "changed": False, "images": [
        {"id": A, "tags": ["lab/app:1"], "action": "skipped", "retagged": []}]}]}
    r = ia_report.preload_report(load, [item("app", present=False)], engine="containerd")
    assert r["changed"] is False and r["loaded"] == [] and r["staged"] == [] and r["removed"] == []
    assert r["summary"] == "0 image(s) loaded, 1 already present (containerd)"


def test_nothing_registered_at_all():
    r = ia_report.preload_report({}, [item("a", present=True)])
    assert r["changed"] is False and len(r["skipped"]) == 1 and r["downloads"] == []


def test_check_mode_reports_unstaged_archives_as_would_load_and_staged_from_the_fetch_list():
    load = {"results": [
        {"item": item("nfs"), "changed": True, "images": [{"id": A, "tags": ["lab/nfs:1"], "action": "would_load", "retagged": []}]},
        {"item": item("ctl"), "changed": False, "skipped": True, "false_condition": "..."},
    ]}
    copied = {"results": [{"item": item("ctl"), "changed": False, "skipped": True}]}
    downloaded = {"results": [{"item": item("web"), "skipped": True, "changed": False}]}
    r = ia_report.preload_report(load, [item("nfs", present=False), item("ctl", present=False)], check_mode=True,
                                 fetch=[item("ctl")], copied=copied, downloaded=downloaded)
    assert [(x["name"], x["action"], x["id"]) for x in r["loaded"]] == [("nfs", "would_load", A), ("ctl", "would_load", None)]
    assert r["loaded"][1]["note"] == "archive not staged yet (check mode)" and r["loaded"][1]["tags"] == ["lab/ctl:1"]
    assert r["staged"] == ["ctl"] and r["downloads"] == [] and r["changed"] is True
    assert r["summary"] == "2 image(s) would be loaded, 0 already present (docker), staged: ctl"
