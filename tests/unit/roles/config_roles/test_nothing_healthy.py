# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The config roles on a fresh host with nothing healthy, run for real.

docker_mirror, pip_mirror and conda_mirror through ansible-playbook against a local-connection host,
every file under the test's directory, with the selection ``none`` (every mirror down on the first
run), ``kept``, or no entry at all (no Docker catalog on a GPU host), and no client file yet.
docker_mirror failed there with "object of type 'dict' has no attribute 'needs'"; it must merge the
other roles' fragments (the nvidia runtime), live-restore and the user's keys into a new daemon.json,
leave the mirror keys out, and run again without a change. The others leave their files missing.

``docker`` and ``dockerd`` on PATH are stand-ins that fail: the role asks dockerd nothing real and the
host's own dockerd is never reloaded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
NVIDIA = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
KEPT = {"status": "kept", "name": "lab1", "url": "http://127.0.0.1:9", "url_masked": "http://127.0.0.1:9",
        "insecure": True, "message": "every mirror down: lab1 kept",
        "ranked": [{"name": "lab1", "url": "http://127.0.0.1:9", "url_masked": "http://127.0.0.1:9", "insecure": True}]}
NONE = {"status": "none", "name": None, "url": None, "ranked": [], "rejected": [], "message": "lab1: refused"}
SELECTIONS = {"none": NONE, "kept": KEPT, "no entry": None}


def play(tmp_path, role, service, selection, variables):
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    for name in ("docker", "dockerd"):
        (stubs / name).write_text("#!/bin/sh\necho 'stand-in: no dockerd here' >&2\nexit 1\n")
        (stubs / name).chmod(0o755)
    selected = {} if selection is None else {service: selection}
    tasks = [{"name": "the report entry", "ansible.builtin.debug": {"msg": "REPORT={{ gpulab_report_%s | to_json }}" % role}}]
    (tmp_path / "play.yml").write_text(json.dumps([{
        "hosts": "all", "gather_facts": False,
        "vars": dict(variables, gpulab_mirrors_selected=selected),
        "roles": [{"role": "gpulab.provision.%s" % role}], "post_tasks": tasks}]))
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"h1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(PATH="%s:%s" % (stubs, env.get("PATH", "")), ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible-tmp"))
    outs = []
    for _run in range(2):
        done = subprocess.run([PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")], cwd=str(tmp_path),
                              env=env, capture_output=True, text=True, timeout=240, check=False)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-4000:]
        outs.append(out)
    reports = [json.loads(re.search(r'"REPORT=(.*)"\n', out).group(1).replace('\\"', '"')) for out in outs]
    changed = [int(re.search(r"h1\s+: ok=\d+\s+changed=(\d+)", out).group(1)) for out in outs]
    return reports, changed


@pytest.mark.parametrize("status", sorted(SELECTIONS))
def test_docker_mirror_on_a_fresh_host_merges_the_nvidia_runtime(tmp_path, status):
    daemon_json = tmp_path / "etc" / "docker" / "daemon.json"
    reports, changed = play(tmp_path, "docker_mirror", "docker", SELECTIONS[status], {
        "docker_mirror_daemon_json_path": str(daemon_json),
        "docker_mirror_containerd": "true",
        "docker_mirror_containerd_certs_dir": str(tmp_path / "etc" / "containerd" / "certs.d"),
        "docker_mirror_containerd_config": str(tmp_path / "etc" / "containerd" / "config.toml"),
        "docker_mirror_proxy_dropin": str(tmp_path / "etc" / "systemd" / "gpulab-proxy.conf"),
        "docker_mirror_service_name": "gpulab-test-no-such-unit",
        "docker_mirror_restart": "never",
        "gpulab_docker_daemon_fragments": {"nvidia": NVIDIA},
        "gpulab_proxy": {"http": "http://127.0.0.1:3128", "https": "http://127.0.0.1:3128"},
    })
    written = json.loads(daemon_json.read_text())
    assert written == {"runtimes": NVIDIA["runtimes"], "live-restore": True}
    assert "registry-mirrors" not in written and "insecure-registries" not in written
    assert changed[1] == 0, "the second run changed something"
    first = reports[0]
    assert first["changed"] is True and first["changed_keys"] == ["live-restore", "runtimes"]
    assert first["registry_mirrors"] == [] and first["action"] == "none"
    assert "registry-mirrors left as they are" in first["summary"] or status == "kept"
    # the proxy drop-in does not depend on the selection; containerd's hosts.toml is never created for it
    assert "HTTPS_PROXY=http://127.0.0.1:3128" in (tmp_path / "etc" / "systemd" / "gpulab-proxy.conf").read_text()
    assert not (tmp_path / "etc" / "containerd" / "certs.d" / "docker.io" / "hosts.toml").exists()
    assert reports[1]["changed"] is False


@pytest.mark.parametrize("status", sorted(SELECTIONS))
def test_pip_mirror_with_nothing_healthy_leaves_the_files_missing(tmp_path, status):
    reports, changed = play(tmp_path, "pip_mirror", "pypi", SELECTIONS[status], {
        "pip_mirror_conf_path": str(tmp_path / "etc" / "pip.conf"),
        "pip_mirror_uv_conf_path": str(tmp_path / "etc" / "uv" / "uv.toml")})
    assert not (tmp_path / "etc").exists() and changed == [0, 0]
    assert reports[0]["changed"] is False and reports[0]["status"] == (SELECTIONS[status] or {}).get("status", "none")
    assert reports[0]["files"] == [str(tmp_path / "etc" / "pip.conf"), str(tmp_path / "etc" / "uv" / "uv.toml")]
    if status == "kept":
        assert [r["action"] for r in reports[0]["renders"]] == ["untouched", "untouched"]
        assert all(r["present"] is False and r["needs"] == "none" for r in reports[0]["renders"])


@pytest.mark.parametrize("status", sorted(SELECTIONS))
def test_conda_mirror_with_nothing_healthy_leaves_the_file_missing(tmp_path, status):
    reports, changed = play(tmp_path, "conda_mirror", "conda", SELECTIONS[status], {
        "conda_mirror_condarc_path": str(tmp_path / "opt" / "conda" / ".condarc"), "conda_mirror_create_parent": True,
        "conda_mirror_pyyaml_package": ""})
    assert not (tmp_path / "opt").exists() and changed == [0, 0]
    assert reports[0]["changed"] is False and reports[0]["files"] == [str(tmp_path / "opt" / "conda" / ".condarc")]
