# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules that take URLs never echo a credential, and take the lab's proxy as
an option (no_log) rather than through the task's environment, which Ansible prints at -vvv.

Through main(), against a real forward proxy (tests/lab/http_proxy.py) on 127.0.0.1 and mirrors on
127.0.0.2 (127.0.0.1 itself is always reached directly).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading

from http.server import ThreadingHTTPServer

import pytest

from mirror_servers import MirrorServer, pypi_mirror

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpulab.provision.plugins.module_utils.secret_args import secrets_in
from ansible_collections.gpulab.provision.plugins.modules import image_archive_fetch, mirror_probe, mirror_probe_all

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "lab"))

import http_proxy  # noqa: E402  (tests/lab: the lab's forward proxy, loopback only)

PROXY_SECRET = "Pr0xy-S3cret"
MIRROR_SECRET = "M1rror-S3cret"
TOKEN = "t0k3n-value-xyz"


def run(module, capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    out = capsys.readouterr().out
    return exit_info.value.code != 0, json.loads(out.strip().splitlines()[-1]), out


@pytest.fixture
def proxy(tmp_path):
    """A forward proxy on 127.0.0.1 that logs each request and the Proxy-Authorization it was given."""
    log = tmp_path / "proxy.log"
    log.write_text("")

    class Recording(http_proxy.Proxy):
        log_path = str(log)

        def _log(self, line):
            auth = self.headers.get("Proxy-Authorization") or ""
            if auth.startswith("Basic "):
                auth = base64.b64decode(auth[6:]).decode()
            http_proxy.Proxy._log(self, "%s auth=%s" % (line, auth or "-"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield {"url": "http://lab:%s@127.0.0.1:%d" % (PROXY_SECRET, server.server_address[1]), "log": log}
    server.shutdown()
    server.server_close()


@pytest.fixture
def mirror():
    server = pypi_mirror(MirrorServer("127.0.0.2")).start()
    yield server
    server.stop()


def _mirror_url(mirror):
    return "http://u:%s@127.0.0.2:%d/simple" % (MIRROR_SECRET, mirror.port)


def _assert_clean(out):
    for secret in (PROXY_SECRET, MIRROR_SECRET, TOKEN):
        assert secret not in out, "%s echoed: %s" % (secret, out)


def test_mirror_probe_goes_through_the_proxy_option_with_its_credentials(proxy, mirror, capsys):
    failed, result, out = run(mirror_probe, capsys, {
        "kind": "pypi", "mirrors": [{"name": "lab", "url": _mirror_url(mirror), "insecure": True}],
        "proxy": {"http": proxy["url"], "no_proxy": [".direct.example"]}})
    assert not failed and result["results"][0]["healthy"], result
    assert "GET http://127.0.0.2:%d/simple/pip/ auth=lab:%s" % (mirror.port, PROXY_SECRET) in proxy["log"].read_text()
    assert result["invocation"]["module_args"]["proxy"]["http"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    _assert_clean(out)


def test_mirror_probe_all_probes_through_the_proxy_option_with_the_collections_no_proxy_rule(
        proxy, mirror, tmp_path, capsys):
    args = {"mirrors": {"pypi": [{"name": "lab", "url": _mirror_url(mirror), "insecure": True}]},
            "services": {"pypi": {"kind": "pypi", "project": "pip"}}, "policy": {"timeout_s": 3},
            "fact_path": str(tmp_path / "gpulab_mirrors.fact"),
            "proxy": {"http": proxy["url"], "https": proxy["url"], "no_proxy": []}}
    failed, result, out = run(mirror_probe_all, capsys, args)
    assert not failed and result["selected"]["pypi"]["name"] == "lab", result
    assert "auth=lab:%s" % PROXY_SECRET in proxy["log"].read_text()
    _assert_clean(out)
    # A CIDR in no_proxy (which urllib's own no_proxy does not understand) sends the mirror direct, as pip does.
    proxy["log"].write_text("")
    args["proxy"]["no_proxy"] = ["127.0.0.0/29"]
    failed, result, out = run(mirror_probe_all, capsys, args)
    assert not failed and result["selected"]["pypi"]["name"] == "lab", result
    assert proxy["log"].read_text() == ""
    _assert_clean(out)


def test_mirror_probe_all_adds_the_catalogs_direct_entries_to_no_proxy(proxy, mirror, tmp_path, capsys):
    failed, result, out = run(mirror_probe_all, capsys, {
        "mirrors": {"pypi": [{"name": "lab", "url": _mirror_url(mirror), "insecure": True, "proxy": False}]},
        "services": {"pypi": {"kind": "pypi", "project": "pip"}}, "policy": {"timeout_s": 3},
        "fact_path": str(tmp_path / "gpulab_mirrors.fact"), "proxy": {"http": proxy["url"]}})
    assert not failed and result["selected"]["pypi"]["name"] == "lab", result
    assert proxy["log"].read_text() == ""  # proxy: false: reached directly
    _assert_clean(out)


def test_a_bad_proxy_names_gpulab_proxy_and_never_shows_its_password(mirror, tmp_path, capsys):
    failed, result, out = run(mirror_probe_all, capsys, {
        "mirrors": {"pypi": [{"name": "lab", "url": _mirror_url(mirror), "insecure": True}]},
        "services": {"pypi": {"kind": "pypi"}}, "fact_path": str(tmp_path / "f.fact"),
        "proxy": {"http": "http://lab:%s@127.0.0.1:3128/some/path" % PROXY_SECRET}})
    assert failed and result["msg"].startswith("gpulab_proxy.http: http://***@127.0.0.1:3128/some/path: "), result
    _assert_clean(out)


# A refused argument fails inside AnsibleModule, before the module's code runs, and echoes every
# argument (invocation): the URLs' secrets must be masked there too.
@pytest.mark.parametrize("module, args", [
    (mirror_probe, {"kind": "pypi", "timeout": "soon",
                    "mirrors": [{"name": "lab", "url": "https://u:%s@127.0.0.2/simple?token=%s" % (MIRROR_SECRET, TOKEN),
                                 "status_url": "https://u:%s@127.0.0.2/status#pypi" % MIRROR_SECRET}]}),
    (mirror_probe_all, {"services": {"pypi": {"kind": "pypi"}}, "lock_wait_s": "long",
                        "mirrors": {"pypi": [{"name": "lab", "url": "https://u:%s@127.0.0.2/s?token=%s"
                                              % (MIRROR_SECRET, TOKEN)}]},
                        "proxy": {"http": "http://lab:%s@127.0.0.1:3128" % PROXY_SECRET}}),
    (mirror_probe_all, {"services": {"pypi": {"kind": "pypi"}}, "mirrors": {},
                        "proxy": {"http": "http://lab:%s@127.0.0.1:3128" % PROXY_SECRET, "ftp": "x"}}),
    (image_archive_fetch, {"url": "https://u:%s@127.0.0.2/a.tar?token=%s" % (MIRROR_SECRET, TOKEN), "dest": "/nonexistent/a",
                           "partial_dir": "/nonexistent", "checksum": "sha256:00", "timeout": "never"}),
], ids=["mirror_probe", "mirror_probe_all", "mirror_probe_all_unknown_suboption", "image_archive_fetch"])
def test_a_refused_argument_echoes_no_secret(module, args, capsys):
    failed, result, out = run(module, capsys, args)
    assert failed and "invocation" in result, result
    _assert_clean(out)


def test_secrets_in_finds_every_url_secret_in_nested_arguments():
    found = secrets_in({"a": [{"url": "https://u:%s@h/s?token=%s" % (MIRROR_SECRET, TOKEN)}, "plain", 3],
                        "b": ("http://lab:%s@proxy:3128" % PROXY_SECRET,), "c": None})
    assert {MIRROR_SECRET, TOKEN, PROXY_SECRET} <= found
    assert secrets_in({"name": "pypi", "url": "https://pypi.org/simple"}) == set()
