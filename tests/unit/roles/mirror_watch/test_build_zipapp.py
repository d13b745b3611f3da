# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watcher's zipapp: built from the collection's module_utils, byte-identical, runs on bare python3."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import watch_config
from mirror_servers import healthy_pypi_server

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SCRIPT = os.path.join(ROOT, "roles", "mirror_watch", "files", "build_zipapp.py")


def load_builder():
    spec = importlib.util.spec_from_file_location("build_zipapp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    out = tmp_path_factory.mktemp("pyz") / "gpulab-mirror-watch.pyz"
    subprocess.run([sys.executable, SCRIPT, ROOT, str(out)], check=True, stdout=subprocess.PIPE)
    return out


def test_the_zip_carries_the_collection_module_utils_and_no_other_copy(pyz):
    names = zipfile.ZipFile(str(pyz)).namelist()
    base = "ansible_collections/gpulab/provision/plugins/module_utils/"
    for needed in ("watch.py", "watch_cli.py", "probe.py", "selection.py", "renderers.py", "dockerd_policy.py",
                   "mirror_url.py", "config_merge.py"):
        assert base + needed in names
        with open(os.path.join(ROOT, "plugins", "module_utils", needed), "rb") as handle:
            assert zipfile.ZipFile(str(pyz)).read(base + needed) == handle.read()
    assert "ansible/module_utils/urls.py" in names  # what probe_transport imports
    assert not any(n.startswith("ansible_collections/gpulab/provision/plugins/modules/") for n in names)


def test_an_unchanged_collection_builds_the_same_bytes(pyz, tmp_path):
    again = tmp_path / "again.pyz"
    subprocess.run([sys.executable, SCRIPT, ROOT, str(again)], check=True, stdout=subprocess.PIPE)
    assert again.read_bytes() == pyz.read_bytes()
    assert load_builder().closure(ROOT, os.path.dirname(__import__("ansible").__file__))


@pytest.mark.skipif(not shutil.which("python3", path="/usr/bin"), reason="needs the system python3")
def test_it_runs_on_python3_without_site_packages(pyz, tmp_path):
    server = healthy_pypi_server()
    try:
        url = server.url + "/simple"
        config = watch_config({"pypi": [{"name": "lab", "url": url, "insecure": True}]}, {"pypi": {"kind": "pypi"}},
                              clients={"pip": {"conf_path": str(tmp_path / "pip.conf"), "manage_uv": False}},
                              settings={"fact_path": str(tmp_path / "fact"), "state_path": str(tmp_path / "state.json"),
                                        "lock_path": str(tmp_path / "lock"), "lease_path": str(tmp_path / "lease")})
        (tmp_path / "fact").write_text(json.dumps({"pypi": {"name": "lab", "status": "ok", "url_masked": url}}))
        (tmp_path / "mirrors.json").write_text(json.dumps(config["config"]))
        # -I -S: no user or site packages, so neither ansible nor PyYAML: the standard library only.
        done = subprocess.run(["/usr/bin/python3", "-I", "-S", str(pyz), "--config", str(tmp_path / "mirrors.json"),
                               "--check", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr.decode()
        report = json.loads(done.stdout)
        assert report["services"]["pypi"]["action"] == "adopt" and report["services"]["pypi"]["probed"] == ["lab"]
        # The User-Agent names the collection and the watcher (politeness towards mirror operators).
        assert {r["headers"].get("User-Agent") for r in server.requests} == {"gpulab.provision-mirror_watch/1"}
    finally:
        server.stop()
