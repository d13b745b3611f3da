# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One printed line per value: module_utils/printable.py, and the places that print.

A mirror name or a reason with a newline or ESC printed as is starts a line of its own: in the journal
a forged ``gpulab-mirror-watch`` line. The catalog check refuses such names (test_selection.py); every
place that prints escapes what it prints anyway (a hand-edited mirrors.json, a mirror's own words).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error

import pytest

from mirror_servers import healthy_pypi_server

from ansible_collections.gpulab.provision.plugins.module_utils import watch
from ansible_collections.gpulab.provision.plugins.module_utils.printable import one_line
from ansible_collections.gpulab.provision.plugins.module_utils.probe import run_probe
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import watch_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
FORGED = "lab\nDec 04 17:00:00 gpu1 gpulab-mirror-watch[1]: pypi: ok lab\x1b[2K"


@pytest.mark.parametrize("value, expected", [
    ("tuna", "tuna"), ("", ""), (None, None), (123, "123"), ("ünïcode µ", "ünïcode µ"),
    ("a\nb\r\tc", "a\\nb\\r\\tc"), ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"), ("del\x7f", "del\\x7f"),
    ("nel\x85csi\x9b", "nel\\x85csi\\x9b"), ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
])
def test_one_line_escapes_every_control_character_and_keeps_the_rest(value, expected):
    assert one_line(value) == expected


def test_the_watchers_journal_line_is_one_line_whatever_the_names_and_reasons_hold():
    decision = {"action": "failover", "from": FORGED, "to": "tuna", "reason": "refused\r\nfake: line"}
    line = watch.log_line("pypi", decision, written=["/etc/pip.conf\n"], notes=["note\x1b]0;title\x07"])
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x07" not in line
    assert line.startswith("pypi: failover lab\\nDec 04 17:00:00 gpu1 gpulab-mirror-watch[1]: pypi: ok lab\\x1b[2K -> ")


def test_the_watchers_inventory_check_is_the_catalog_check_and_refuses_a_forged_name():
    """watch_config (the mirror_watch role's preflight and mirror_probe_all) runs mirror_catalog_errors."""
    with pytest.raises(watch.WatchError) as info:
        watch_config({"pypi": [{"name": FORGED, "url": "https://a.example/simple"}]}, {"pypi": {"kind": "pypi"}})
    assert info.value.problems[0].startswith("gpulab_mirrors.pypi[0].name: 'lab\\nDec 04")
    assert "\n" not in str(info.value)


def test_a_probe_reason_that_quotes_the_mirror_is_one_line():
    class Opener:
        def open(self, method, url, headers, timeout, insecure, connections):
            raise urllib.error.URLError("bad answer\nDec 04 gpulab-mirror-watch: pypi: ok")

    result = run_probe("pypi", [{"name": "m", "url": "https://m.example/simple"}], 1.0, opener=Opener())["results"][0]
    assert result["reason"] == "bad answer\\nDec 04 gpulab-mirror-watch: pypi: ok"


def test_the_probe_refuses_a_forged_mirror_name_it_is_given_directly():
    with pytest.raises(ProbeSpecError, match=r"^mirrors\[0\]\.name: 'lab\\nDec 04 .* is not a mirror name"):
        run_probe("pypi", [{"name": FORGED, "url": "https://m.example/simple"}], 1.0)


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    out = tmp_path_factory.mktemp("pyz") / "gpulab-mirror-watch.pyz"
    subprocess.run([sys.executable, os.path.join(ROOT, "roles", "mirror_watch", "files", "build_zipapp.py"), ROOT,
                    str(out)], check=True, stdout=subprocess.PIPE)
    return out


@pytest.mark.skipif(not shutil.which("python3", path="/usr/bin"), reason="needs the system python3")
@pytest.mark.parametrize("forge_config", [False, True], ids=["forged-fact", "forged-config"])
def test_the_real_watcher_prints_one_line_per_service_whatever_its_files_hold(pyz, tmp_path, forge_config):
    """The local fact (and mirrors.json) edited by hand past the role's check: one journal line each.

    A forged fact name reaches the line as the adopted choice; a forged mirrors.json is refused
    by the watcher's own check of its configuration, in one line too.
    """
    server = healthy_pypi_server()
    try:
        url = server.url + "/simple"
        config = watch_config({"pypi": [{"name": "lab", "url": url, "insecure": True}]}, {"pypi": {"kind": "pypi"}},
                              clients={"pip": {"conf_path": str(tmp_path / "pip.conf"), "manage_uv": False}},
                              settings={"fact_path": str(tmp_path / "fact"), "state_path": str(tmp_path / "state.json"),
                                        "lock_path": str(tmp_path / "lock"), "lease_path": str(tmp_path / "lease")})
        text = json.dumps(config["config"])
        if forge_config:
            text = text.replace('"name": "lab"', '"name": %s' % json.dumps(FORGED))
            assert json.loads(text)["services"]["pypi"]["mirrors"][0]["name"] == FORGED
        (tmp_path / "mirrors.json").write_text(text)
        (tmp_path / "fact").write_text(json.dumps({"pypi": {"name": FORGED, "status": "ok", "url_masked": url}}))
        done = subprocess.run(["/usr/bin/python3", "-I", "-S", str(pyz), "--config", str(tmp_path / "mirrors.json"),
                               "--check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
        out, err = done.stdout.decode(), done.stderr.decode()
        assert "Traceback" not in err, err
        lines = [line for line in (out + err).splitlines() if line]
        assert len(lines) == 1, lines
        # the forged name is the current choice the watcher cannot find in its catalog: "suspect lab\nDec 04 ..."
        expected = "gpulab-mirror-watch: " if forge_config else "check: pypi: suspect lab\\nDec 04 17:00:00 gpu1 "
        assert lines[0].startswith(expected), lines
        assert "\x1b" not in out + err and "lab\\nDec 04" in lines[0]
    finally:
        server.stop()
