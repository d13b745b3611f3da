# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No credential at -vvv: the collection's playbooks, run for real at -vvv.

A local-connection host whose proxy (``gpulab_proxy``) and pypi mirror both carry a password: the
mirror is HTTPS on 127.0.0.2 (a test CA), reached through a forward proxy on 127.0.0.1 (CONNECT),
so the probe really goes through the proxy. Every client file is under the test's directory. No
secret may appear in anything the run prints (module arguments echoed at -vvv, the EXEC line a
task's ``environment:`` makes, results, diffs, warnings) nor in any file it writes, except the client
files whose job is to hold them (pip.conf, uv.toml), which must hold them, readable by root only.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import threading

from http.server import ThreadingHTTPServer

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))

import http_proxy  # noqa: E402  (tests/lab: the lab's forward proxy, loopback only)

from mirror_servers import REGISTRY_HEADERS, MirrorServer, pypi_mirror  # noqa: E402

PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
PROXY_SECRET = "ProxyS3cret"
MIRROR_SECRET = "MirrorS3cret"
LAYER_SECRET = "LayerS3cret"
SECRETS = (PROXY_SECRET, MIRROR_SECRET, LAYER_SECRET)


class _Proxy(http_proxy.Proxy):
    """The lab's proxy, logging the credentials each request brought (Proxy-Authorization)."""

    def _log(self, line):
        auth = self.headers.get("Proxy-Authorization") or ""
        if auth.startswith("Basic "):
            auth = base64.b64decode(auth[6:]).decode()
        http_proxy.Proxy._log(self, "%s auth=%s" % (line, auth or "-"))


def _proxy_server(log_path):
    handler = type("LoggingProxy", (_Proxy,), {"log_path": str(log_path)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The fake lab: a proxy on 127.0.0.1, two HTTPS pypi mirrors (127.0.0.2, 127.0.0.3) and a Docker
    registry mirror (127.0.0.4) behind it."""
    trustme = pytest.importorskip("trustme")
    base = tmp_path_factory.mktemp("lab")
    ca = trustme.CA()
    ca_path = base / "lab-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    mirrors = []
    for host in ("127.0.0.2", "127.0.0.3"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(host).configure_cert(ctx)
        mirrors.append(pypi_mirror(MirrorServer(host, tls=ctx)).start())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.4").configure_cert(ctx)
    registry = MirrorServer("127.0.0.4", tls=ctx).route("/v2/", 200, REGISTRY_HEADERS, "{}").start()
    proxy_log = base / "proxy.log"
    proxy_log.write_text("")
    proxy = _proxy_server(proxy_log)
    yield {"ca_path": str(ca_path), "mirrors": mirrors, "registry": registry, "proxy_port": proxy.server_address[1],
           "proxy_log": proxy_log}
    proxy.shutdown()
    proxy.server_close()
    for server in mirrors + [registry]:
        server.stop()


def _host_vars(lab, work):
    proxy = "http://user:%s@127.0.0.1:%d" % (PROXY_SECRET, lab["proxy_port"])
    first, second = lab["mirrors"]
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "gpulab_gpu_host": False,
        "gpulab_proxy": {"http": proxy, "https": proxy, "no_proxy": [".direct.lab.example"]},
        "gpulab_mirrors": {"pypi": [{"name": "lab", "url": "https://user:%s@127.0.0.2:%d/simple" % (
            MIRROR_SECRET, first.port)}]},
        # a layer: the host's catalog is built by host_catalog.yml (a set_fact of real URLs)
        "gpulab_mirrors_add_rack": {"pypi": [{"name": "rack", "url": "https://token:%s@127.0.0.3:%d/simple" % (
            LAYER_SECRET, second.port)}]},
        "gpulab_mirror_policy": {"timeout_s": 5},
        "mirror_select_services": ["pypi"],
        "mirror_select_ca_path": lab["ca_path"],
        "mirror_select_fact_dir": str(work / "facts.d"),
        "mirror_watch_lock_path": str(work / "lock" / "mirrors.lock"),
        "pip_mirror_conf_path": str(work / "etc" / "pip.conf"),
        "pip_mirror_uv_conf_path": str(work / "etc" / "uv" / "uv.toml"),
        "pip_mirror_backup": False,
        "gpulab_report_path": str(work / "report.json"),
        "gpulab_validate_fail": False,
    }


def _with_docker(host_vars, lab, work):
    """Also a Docker registry mirror: docker_mirror renders daemon.json and dockerd's proxy drop-in (which holds
    the proxy's password). Run in check mode only: its files are under ``work``, but it asks the host's dockerd."""
    out = dict(host_vars, mirror_select_services=["pypi", "docker"], docker_mirror_restart="never",
               docker_mirror_daemon_json_path=str(work / "docker" / "daemon.json"),
               docker_mirror_containerd_certs_dir=str(work / "containerd" / "certs.d"),
               docker_mirror_containerd_config=str(work / "containerd" / "config.toml"),
               docker_mirror_proxy_dropin=str(work / "systemd" / "gpulab-proxy.conf"),
               docker_mirror_service_name="gpulab-test-no-such-docker")
    out["gpulab_mirrors"] = dict(host_vars["gpulab_mirrors"],
                                 docker=[{"name": "registry", "url": "https://127.0.0.4:%d" % lab["registry"].port}])
    return out


def run_playbook(work, host_vars, playbook, *args):
    inventory = work / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"gpu1": host_vars}}}))
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("ANSIBLE_") and key.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
    env.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(work / ".ansible-tmp"),
               ANSIBLE_REMOTE_TEMP=str(work / ".ansible-remote"), ANSIBLE_RETRY_FILES_ENABLED="0")
    out = subprocess.run([PLAYBOOK, "-vvv", "-i", str(inventory), playbook] + list(args), cwd=str(work), env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    return out


def leaks(text):
    return sorted({secret for secret in SECRETS if secret in text})


def written_files(work):
    """Every file under the run's directory, except the inventory (which holds the secrets as input)."""
    for folder, _dirs, files in os.walk(str(work)):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.relpath(path, str(work)) != "hosts.yml":
                yield path


def assert_no_secret(work, out, client_files=()):
    printed = out.stdout + out.stderr
    found = leaks(printed)
    lines = [line for line in printed.splitlines() if leaks(line)]
    assert not found, "secret(s) %s printed at -vvv:\n%s" % (found, "\n".join(line[:600] for line in lines[:20]))
    for path in written_files(work):
        if path in client_files:
            continue
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
        assert not leaks(text), "secret(s) %s written to %s" % (leaks(text), path)


# (name, playbook, arguments, docker). reachable.yml and reachable_facts.yml run as the first play of
# failover.yml and site.yml; bundle.yml reads neither gpulab_proxy nor gpulab_mirrors.
PLAYBOOKS = [
    ("site", os.path.join(ROOT, "playbooks", "site.yml"), (), False),
    ("failover", os.path.join(ROOT, "playbooks", "failover.yml"), (), False),
    ("failover_check", os.path.join(ROOT, "playbooks", "failover.yml"), ("--check", "--diff"), False),
    ("site_docker_check", os.path.join(ROOT, "playbooks", "site.yml"), ("--check", "--diff"), True),
    ("report", os.path.join(ROOT, "playbooks", "report.yml"), (), False),
    ("validate", os.path.join(ROOT, "playbooks", "validate.yml"), (), False),
]


@pytest.fixture(scope="module")
def runs(lab, tmp_path_factory):
    """site.yml (writes pip.conf and uv.toml, records the fact), then failover.yml (real and
    --check --diff), site.yml --check --diff with a Docker mirror too, report.yml on its own and
    validate.yml, in one host's directory."""
    work = tmp_path_factory.mktemp("host")
    logs = tmp_path_factory.mktemp("logs")  # each run's output, to read when a test fails
    (work / "lock").mkdir(mode=0o755)
    host_vars = _host_vars(lab, work)
    results = {}
    for name, playbook, args, docker in PLAYBOOKS:
        results[name] = run_playbook(work, _with_docker(host_vars, lab, work) if docker else host_vars, playbook, *args)
        (logs / ("%s.log" % name)).write_text(results[name].stdout + results[name].stderr)
    return work, host_vars, results


@pytest.mark.parametrize("name", [entry[0] for entry in PLAYBOOKS])
def test_no_secret_in_any_output_at_vvv(runs, name):
    work, host_vars, results = runs
    out = results[name]
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    client_files = (host_vars["pip_mirror_conf_path"], host_vars["pip_mirror_uv_conf_path"])
    assert_no_secret(work, out, client_files)


def test_the_run_really_used_the_proxy_and_the_secrets(runs, lab):
    """The secrets were there to leak: the probe went through the proxy, pip.conf holds both."""
    work, host_vars, results = runs
    log = lab["proxy_log"].read_text()
    # site.yml's and failover.yml's probes, with the proxy's credentials (the module's proxy option)
    assert "CONNECT 127.0.0.2:%d auth=user:%s" % (lab["mirrors"][0].port, PROXY_SECRET) in log
    assert "CONNECT 127.0.0.3:%d auth=user:%s" % (lab["mirrors"][1].port, PROXY_SECRET) in log
    assert "CONNECT 127.0.0.4:%d auth=user:%s" % (lab["registry"].port, PROXY_SECRET) in log
    pip_conf = open(host_vars["pip_mirror_conf_path"], encoding="utf-8").read()
    assert MIRROR_SECRET in pip_conf or LAYER_SECRET in pip_conf
    assert PROXY_SECRET in pip_conf
    assert oct(os.stat(host_vars["pip_mirror_conf_path"]).st_mode & 0o777) == "0o640"
    report = json.loads((work / "report.json").read_text())
    assert report  # the run report was written (and holds no secret: assert_no_secret read it)
