# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.provision.image_archive_fetch main(): a URL with user:password@ and ?token= never shows in
what the module prints (result, errors, invocation), against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os

import pytest

from image_archive_helpers import SECRETS, FileServer, run_main, sha  # shared with the other image_archive tests

from ansible_collections.gpulab.provision.plugins.modules import image_archive_fetch as module


def run_module(args, capsys, check_mode=False):
    """main() with these args; (raw stdout, result dict)."""
    return run_main(module, args, capsys, check_mode=check_mode)


@pytest.fixture
def server():
    srv = FileServer({"/kit/a.tar": os.urandom(200000)})
    yield srv
    srv.stop()


def args_for(server, tmp_path, checksum=None, path="/kit/a.tar"):
    partial = tmp_path / ".partial"
    partial.mkdir(exist_ok=True)
    return {"url": server.url(path), "dest": str(tmp_path / "a.tar"), "partial_dir": str(partial),
            "checksum": checksum or "sha256:" + sha(server.files["/kit/a.tar"]), "timeout": 5, "attempts": 1}


def assert_no_secret(out):
    for secret in SECRETS:
        assert secret not in out, "%r printed in %s" % (secret, out)


def test_download_prints_no_secret_and_is_idempotent(server, tmp_path, capsys):
    server.cut = 50000
    args = dict(args_for(server, tmp_path), attempts=2)
    out, res = run_module(args, capsys)
    assert not res.get("failed") and res["changed"] and res["resumed_at"] == [50000]
    assert res["msg"] == "downloaded http://***@127.0.0.1:%d/kit/a.tar?token=*** (resumed at byte 50000)" % server.port
    assert_no_secret(out)
    out, res = run_module(args, capsys)
    assert not res["changed"] and res["attempts"] == 0
    assert_no_secret(out)


@pytest.mark.parametrize("case", ["checksum", "missing"])
def test_failures_print_no_secret(server, tmp_path, capsys, case):
    if case == "checksum":
        args = args_for(server, tmp_path, checksum="0" * 64)
    else:
        args = args_for(server, tmp_path, path="/kit/missing.tar")
    out, res = run_module(args, capsys)
    assert res["failed"] and res["error_kind"] == {"checksum": "checksum", "missing": "download"}[case]
    assert "http://***@127.0.0.1:%d/kit/" % server.port in res["msg"]
    assert_no_secret(out)


def test_check_mode_downloads_nothing(server, tmp_path, capsys):
    out, res = run_module(args_for(server, tmp_path), capsys, check_mode=True)
    assert res["changed"] and res["msg"].startswith("would download http://***@")
    assert not (tmp_path / "a.tar").exists() and server.requests == []
    assert_no_secret(out)
