# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_fetch: resumable, verified downloads against a real HTTP server on
127.0.0.1 that asks for Basic credentials and a query token; no secret ever shows in a message."""

from __future__ import annotations

import json
import os

import pytest

from image_archive_helpers import (  # shared with the other image_archive tests
    PASSWORD, PASSWORD_IN_URL, SECRETS, TOKEN, USER, FileServer, sha,
)

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_fetch as ia_fetch
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


@pytest.fixture
def server():
    srv = FileServer({"/kit/a.tar": os.urandom(300000)})
    yield srv
    srv.stop()


@pytest.fixture
def dirs(tmp_path):
    partial = tmp_path / ".partial"
    partial.mkdir()
    return str(tmp_path / "a.tar"), str(partial)


def no_secret(text):
    text = json.dumps(text) if not isinstance(text, str) else text
    return not any(s in text for s in SECRETS)


def fetch(server, dirs, url=None, checksum=None, **kw):
    data = server.files["/kit/a.tar"]
    dest, partial = dirs
    kw.setdefault("sleep", lambda s: None)
    return ia_fetch.fetch_archive(url or server.url("/kit/a.tar"), dest, partial,
                                  checksum or "sha256:" + sha(data), timeout=5, **kw)


def test_download_with_userinfo_and_token_shows_neither(server, dirs):
    res = fetch(server, dirs)
    assert res["changed"] and res["bytes"] == len(server.files["/kit/a.tar"])
    with open(dirs[0], "rb") as f:
        assert f.read() == server.files["/kit/a.tar"]
    assert oct(os.stat(dirs[0]).st_mode & 0o777) == "0o640"
    assert res["msg"] == "downloaded http://***@127.0.0.1:%d/kit/a.tar?token=***" % server.port
    assert no_secret(res)
    # the credentials went out only after the server asked (401, then Basic)
    assert [r["auth"] for r in server.requests] == [False, True]


def test_second_run_is_unchanged(server, dirs):
    fetch(server, dirs)
    n = len(server.requests)
    res = fetch(server, dirs)
    assert not res["changed"] and len(server.requests) == n


def test_check_mode_writes_nothing_and_masks(server, dirs):
    res = fetch(server, dirs, check_mode=True)
    assert res["changed"] and res["msg"].startswith("would download http://***@")
    assert no_secret(res) and not os.path.exists(dirs[0]) and server.requests == []


def test_cut_transfer_is_resumed_with_range(server, dirs):
    server.cut = 100000
    res = fetch(server, dirs)
    assert res["resumed_at"] == [100000] and res["attempts"] == 2
    assert res["msg"].endswith("(resumed at byte 100000)")
    assert [r["range"] for r in server.requests if r["auth"]] == [None, "bytes=100000-"]
    assert no_secret(res)


def test_server_ignoring_range_starts_over(server, dirs):
    with open(os.path.join(dirs[1], "a.tar.part"), "wb") as f:
        f.write(server.files["/kit/a.tar"][:5000])
    server.ignore_range = True
    res = fetch(server, dirs)
    assert res["changed"] and res["resumed_at"] == []
    assert "server ignored Range (HTTP 200), started over" in res["notes"][0]


def test_checksum_mismatch_removes_the_download_and_masks(server, dirs):
    with pytest.raises(ImageArchiveError) as exc:
        fetch(server, dirs, checksum="0" * 64)
    e = exc.value
    assert e.kind == "checksum" and "expected sha256:%s, got sha256:%s" % ("0" * 64, sha(server.files["/kit/a.tar"])) in e.msg
    assert "http://***@127.0.0.1:%d/kit/a.tar?token=***" % server.port in e.msg
    assert no_secret(e.msg) and no_secret(e.details)
    assert os.listdir(dirs[1]) == [] and not os.path.exists(dirs[0])


@pytest.mark.parametrize("path,token,code", [("/kit/missing.tar", TOKEN, 404), ("/kit/a.tar", "wrong-" + TOKEN, 403)])
def test_http_errors_are_final_and_masked(server, dirs, path, token, code):
    url = server.url(path, token=token)
    with pytest.raises(ImageArchiveError) as exc:
        fetch(server, dirs, url=url)
    assert exc.value.kind == "download" and "HTTP %d" % code in exc.value.msg
    assert exc.value.details["attempts"] == 1
    assert no_secret(exc.value.msg) and token not in exc.value.msg


def test_wrong_password_is_masked(server, dirs):
    url = server.url("/kit/a.tar", password="wrong%2Fpass")
    with pytest.raises(ImageArchiveError) as exc:
        fetch(server, dirs, url=url)
    assert "HTTP 401" in exc.value.msg
    assert "wrong" not in exc.value.msg and no_secret(exc.value.msg)


def test_refused_connection_keeps_the_part_and_masks(refusing, dirs):
    url = "http://%s:%s@127.0.0.1:%d/kit/a.tar?token=%s" % (USER, PASSWORD_IN_URL, refusing.port, TOKEN)
    dest, partial = dirs
    with pytest.raises(ImageArchiveError) as exc:
        ia_fetch.fetch_archive(url, dest, partial, "a" * 64, timeout=2, attempts=2, sleep=lambda s: None)
    e = exc.value
    assert e.kind == "download" and "failed after 2 attempt(s)" in e.msg
    assert no_secret(e.msg) and no_secret(e.details)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "ftp://u:%s@h/x" % PASSWORD_IN_URL,
    "u:%s@h/x?token=%s" % (PASSWORD_IN_URL, TOKEN),          # no scheme: no parser sees the userinfo
    "http://u:%s@127.0.0.1/x?token=%s" % (PASSWORD, TOKEN),  # '/' and '#' not encoded: split by parsers
    "http://u:%s@127.0.0.1:99999/x" % PASSWORD_IN_URL,       # bad port
])
def test_unusable_urls_are_refused_without_showing_them(dirs, url):
    with pytest.raises(ImageArchiveError) as exc:
        ia_fetch.fetch_archive(url, dirs[0], dirs[1], "a" * 64)
    assert exc.value.kind == "invalid" and no_secret(exc.value.msg)
    assert "127.0.0.1" not in exc.value.msg and "/x" not in exc.value.msg
