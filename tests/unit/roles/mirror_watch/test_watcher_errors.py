# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real watcher zipapp (built as the role builds it, run on ``python3 -I -S``) against broken input.

Every problem ends in one line on stderr naming the file and the problem, an exit status of its own
(roles/mirror_watch/README.md), and the client files byte for byte as they were. Before 1.3.0 a
wrongly typed configuration, state or fact, or a full state directory, ended in a traceback (exit 1).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time

import promtool
import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import mask_url
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import render_client_config
from ansible_collections.gpulab.provision.plugins.module_utils.watch import LEASE_SKEW_S
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import watch_config
from mirror_servers import RefusingPort, healthy_pypi_server

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SCRIPT = os.path.join(ROOT, "roles", "mirror_watch", "files", "build_zipapp.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

pytestmark = pytest.mark.skipif(not shutil.which("flock"), reason="util-linux")


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    out = tmp_path_factory.mktemp("pyz") / "gpulab-mirror-watch.pyz"
    subprocess.run([sys.executable, SCRIPT, ROOT, str(out)], check=True, stdout=subprocess.PIPE)
    return out


@pytest.fixture(scope="module")
def mirrors():
    good, dead = healthy_pypi_server(), RefusingPort()
    yield {"good": good.url + "/simple", "dead": dead.url + "/simple"}
    good.stop()
    dead.stop()


def _selection(name, url):
    entry = {"name": name, "url": url, "url_masked": mask_url(url), "insecure": True, "status": "ok", "latency_ms": 1}
    return dict(entry, ranked=[dict(entry)], rejected=[], message="")


@pytest.fixture
def host(tmp_path, mirrors):
    """A host as site.yml leaves it: pip.conf and uv.toml on mirror ``a`` (dead), the fact naming it."""
    catalog = {"pypi": [{"name": "a", "url": mirrors["dead"], "insecure": True},
                        {"name": "b", "url": mirrors["good"], "insecure": True}]}
    (tmp_path / "run").mkdir(mode=0o755)
    settings = {"fact_path": str(tmp_path / "fact"), "state_path": str(tmp_path / "state" / "state.json"),
                "lock_path": str(tmp_path / "run" / "gpulab" / "mirrors.lock"), "lease_path": str(tmp_path / "lease"),
                "lock_wait_s": 1, "confirm": 1}
    clients = {"pip": {"conf_path": str(tmp_path / "pip.conf"), "uv_conf_path": str(tmp_path / "uv.toml")}}
    config = watch_config(catalog, {"pypi": {"kind": "pypi", "project": "pip"}}, {"timeout_s": 2}, None, clients,
                          settings)["config"]
    (tmp_path / "pip.conf").write_text(render_client_config("", "pip_conf", _selection("a", mirrors["dead"]),
                                                            {"timeout": 10, "retries": 2})["content"])
    (tmp_path / "uv.toml").write_text(render_client_config("", "uv_toml", _selection("a", mirrors["dead"]))["content"])
    (tmp_path / "fact").write_text(json.dumps({"pypi": {"name": "a", "status": "ok", "url_masked": mirrors["dead"]}}))
    files = {name: (tmp_path / name).read_bytes() for name in ("pip.conf", "uv.toml", "fact")}
    return {"path": tmp_path, "config": config, "files": files, "mirrors": mirrors}


def watch(pyz, host, config=None, text=None, wrap=()):
    """Run the zipapp once on ``config`` (or the raw ``text``) as the systemd unit does."""
    path = host["path"] / "mirrors.json"
    path.write_text(text if text is not None else json.dumps(config if config is not None else host["config"]))
    done = subprocess.run(list(wrap) + [PYTHON, "-I", "-S", str(pyz), "--config", str(path), "--once"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def unchanged(host):
    return all((host["path"] / name).read_bytes() == data for name, data in host["files"].items())


def one_line(err, *parts):
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("gpulab-mirror-watch: ") and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)
    return err


# --------------------------------------------------------------------------------------------------
# The configuration: exit 3


def test_a_healthy_configuration_switches_and_exits_0(pyz, host):
    """The baseline the broken cases below differ from: mirror a is dead, confirm 1, the watcher moves pip to b."""
    rc, out, err = watch(pyz, host)
    assert (rc, err) == (0, ""), err
    assert out.startswith("pypi: failover a -> b") and host["mirrors"]["good"] in (host["path"] / "pip.conf").read_text()


@pytest.mark.parametrize("text, problem", [
    ('{"version": 1, "services": {', "is not valid JSON (Expecting"),
    ("", "is not valid JSON"),
    ("\xff\xfe", "is not valid JSON"),
    ("[" * 100000, "is not valid JSON"),
    ('[{"version": 1}]', "must be a JSON object (as the mirror_watch role writes it), got list"),
    ('"mirrors"', "got string"),
    ("null", "is missing"),
])
def test_a_malformed_configuration_exits_3_with_one_line(pyz, host, text, problem):
    rc, out, err = watch(pyz, host, text=text)
    assert rc == 3 and out == ""
    one_line(err, str(host["path"] / "mirrors.json"), problem)
    assert unchanged(host) and not (host["path"] / "state").exists()


def _set(config, where, value):
    keys = where.replace("]", "").replace("[", ".").split(".")
    node = config
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


# (where, wrong value, what the line says): every key of mirrors.json with a wrong type.
WRONG = [
    ("version", "1", "version: '1' is not 1"),
    ("confirm", "2", "confirm: '2' must be a whole number >= 1"),
    ("confirm", True, "confirm: True must be"),
    ("fact_path", 5, "fact_path: 5 must be an absolute path"),
    ("state_path", "state.json", "state_path: 'state.json' must be an absolute path"),
    ("lock_path", ["/run/x"], "lock_path: ['/run/x'] must be an absolute path"),
    ("lease_path", None, "lease_path: None must be an absolute path"),
    ("lease_s", "1800", "lease_s: '1800' must be a number of seconds > 0"),
    ("lock_wait_s", -1, "lock_wait_s: -1 must be a number of seconds >= 0"),
    ("validate_certs", "yes", "validate_certs: 'yes' must be true or false"),
    ("ca_path", 5, "ca_path: 5 must be an absolute path or null"),
    ("metrics_dir", "textfile", "metrics_dir: 'textfile' must be an absolute directory path, or empty (no metrics)"),
    ("metrics_dir", 5, "metrics_dir: 5 must be an absolute directory path"),
    ("interval_s", "2min", "interval_s: '2min' must be a number of seconds > 0 or null"),
    ("interval_s", 0, "interval_s: 0 must be a number of seconds > 0 or null"),
    ("environment", ["HTTPS_PROXY"], "environment: must be an object of strings"),
    ("environment", {"HTTPS_PROXY": 8080}, "environment: must be an object of strings"),
    ("policy", [], "policy: must be an object, got list"),
    ("policy.timeout_s", "3", "gpulab_mirror_policy.timeout_s: '3' must be a number of seconds"),
    ("policy.strategy", 5, "gpulab_mirror_policy.strategy: 5 is unknown"),
    ("services", [], "services: must be an object of service -> {probe, mirrors, pin, clients}, got list"),
    ("services.pypi", "pypi", "services.pypi: must be an object {probe, mirrors, pin, clients}, got string"),
    ("services.pypi.probe", [], "services.pypi.probe: must be an object"),
    ("services.pypi.probe.kind", 5, "services.pypi.probe.kind: 5 must be a probe kind"),
    ("services.pypi.probe.mirrors", {}, "services.pypi.probe.mirrors: must be a list of objects with a name"),
    ("services.pypi.mirrors", {}, "services.pypi.mirrors: must be a non-empty list of {name, url}, got object"),
    ("services.pypi.mirrors[0]", "a", "services.pypi.mirrors[0]: must be an object with a name and a url"),
    ("services.pypi.mirrors[0].url", 5, "services.pypi.mirrors[0]: must be an object with a name and a url"),
    ("services.pypi.mirrors[1].name", None, "services.pypi.mirrors[1]: must be an object with a name and a url"),
    ("services.pypi.pin", 5, "services.pypi.pin: 5 must be a mirror name or null"),
    ("services.pypi.clients", {}, "services.pypi.clients: must be a list of client files, got object"),
    ("services.pypi.clients[0]", "pip.conf", "services.pypi.clients[0]: must be an object {client, path, options}"),
    ("services.pypi.clients[0].client", "pipconf", "services.pypi.clients[0].client: 'pipconf' is not one of"),
    ("services.pypi.clients[0].path", "pip.conf", "services.pypi.clients[0].path: 'pip.conf' must be an absolute path"),
    ("services.pypi.clients[0].options", [], "services.pypi.clients[0].options: must be an object, got list"),
    ("services.pypi.clients[0].backup", "yes", "services.pypi.clients[0].backup: 'yes' must be true or false"),
    ("services.pypi.clients[0].backup_keep", "5", "services.pypi.clients[0].backup_keep: '5' must be a whole number"),
    ("services.pypi.clients[0].credentials_group", 0, "services.pypi.clients[0].credentials_group: 0 must be"),
    ("services.pypi.mirrors[0].url", "ftp://x/simple", "gpulab_mirrors.pypi[0].url"),
]


@pytest.mark.parametrize("where, value, problem", WRONG, ids=["%s=%r" % (w, v) for w, v, _p in WRONG])
def test_every_wrongly_typed_key_exits_3_naming_it(pyz, host, where, value, problem):
    config = copy.deepcopy(host["config"])
    _set(config, where, value)
    rc, out, err = watch(pyz, host, config)
    assert rc == 3 and out == ""
    one_line(err, str(host["path"] / "mirrors.json") + " is not a usable mirror_watch configuration: ", problem,
             "run the gpulab.provision.mirror_watch role to write it again")
    assert unchanged(host) and not (host["path"] / "state").exists()


def test_a_newline_in_a_key_stays_on_the_one_line(pyz, host):
    config = copy.deepcopy(host["config"])
    config["services"]["pypi\ngpulab-mirror-watch: forged"] = "x"
    rc, _out, err = watch(pyz, host, config)
    assert rc == 3
    one_line(err, "services.pypi\\ngpulab-mirror-watch: forged: must be an object")


# --------------------------------------------------------------------------------------------------
# The state file (exit 4) and the local fact (exit 5)


@pytest.mark.parametrize("text, problem", [
    ("\x00\x01garbage", "is not valid JSON"),
    ('{"version": 1, "services": {"pypi": {"current": "a", "bad": 1', "is not valid JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    ('{"services": ["pypi"]}', "services: must be an object, got list"),
    ('{"services": {"pypi": "a"}}', "services.pypi: must be an object, got str"),
    ('{"services": {"pypi": {"current": "a", "bad": "1"}}}', "services.pypi.bad: '1' must be a whole number >= 0"),
    ('{"services": {"pypi": {"current": "a", "better_count": -1}}}', "services.pypi.better_count: -1 must be"),
    ('{"services": {"pypi": {"current": ["a"]}}}', "services.pypi.current: ['a'] must be a mirror name or null"),
])
def test_a_broken_state_file_exits_4_and_touches_nothing(pyz, host, text, problem):
    (host["path"] / "state").mkdir()
    (host["path"] / "state" / "state.json").write_text(text)
    rc, out, err = watch(pyz, host)
    assert rc == 4 and out == ""
    one_line(err, str(host["path"] / "state" / "state.json"), problem,
             "remove it: the counts start afresh and the choice is read from the local fact")
    assert unchanged(host) and (host["path"] / "state" / "state.json").read_text() == text


@pytest.mark.parametrize("text, problem", [
    ("{not json", "is not valid JSON"),
    ('["pypi"]', "must be a JSON object, got list"),
    ('{"pypi": "a"}', "pypi: must be an object {name, status, url_masked}, got str"),
    ('{"pypi": {"name": 1}}', "pypi.name: 1 must be a mirror name or null"),
])
def test_a_broken_local_fact_exits_5_and_touches_nothing(pyz, host, text, problem):
    (host["path"] / "fact").write_text(text)
    host["files"]["fact"] = text.encode()
    rc, out, err = watch(pyz, host)
    assert rc == 5 and out == ""
    one_line(err, str(host["path"] / "fact"), problem, "the next Ansible run (site.yml, failover.yml) writes it again")
    assert unchanged(host)


def test_a_fifo_in_place_of_the_state_file_is_refused_not_waited_on(pyz, host):
    (host["path"] / "state").mkdir()
    os.mkfifo(str(host["path"] / "state" / "state.json"))
    rc, out, err = watch(pyz, host)
    assert rc == 4 and out == ""
    one_line(err, "%s is not a regular file; remove it" % (host["path"] / "state" / "state.json"))
    assert unchanged(host)


def test_an_unreadable_configuration_names_the_os_error(pyz, host):
    (host["path"] / "mirrors.json").mkdir()
    done = subprocess.run([PYTHON, "-I", "-S", str(pyz), "--config", str(host["path"] / "mirrors.json"), "--once"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    assert done.returncode == 3
    one_line(done.stderr.decode(), str(host["path"] / "mirrors.json") + " cannot be read (Is a directory)")


# --------------------------------------------------------------------------------------------------
# A full state directory: exit 6 (a real ENOSPC on a tiny tmpfs, in a mount namespace of its own)


def _can_mount_tmpfs(tmp_path):
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=16k tmpfs "$1"', "sh", str(tmp_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return probe.returncode == 0


def test_a_full_state_directory_exits_6_with_one_line(pyz, host):
    if not _can_mount_tmpfs(host["path"]):
        pytest.skip("cannot mount a tmpfs here (not root or no mount namespace); test_watch_cli covers it in-process")
    (host["path"] / "state").mkdir()
    # healthy: the fact names b, so nothing switches and only the state is written (and cannot be)
    (host["path"] / "fact").write_text(json.dumps({"pypi": {"name": "b", "status": "ok", "url_masked": "x"}}))
    host["files"]["fact"] = (host["path"] / "fact").read_bytes()
    fill = ('mount -t tmpfs -o size=16k tmpfs "$1" && (dd if=/dev/zero of="$1/fill" bs=4k 2>/dev/null || true) '
            '&& shift && exec "$@"')
    rc, out, err = watch(pyz, host, wrap=["unshare", "-m", "sh", "-c", fill, "sh", str(host["path"] / "state")])
    assert rc == 6, (out, err)
    assert out.startswith("pypi: adopt b")
    one_line(err, "cannot write the state file %s (No space left on device): this run's counts are lost"
             % (host["path"] / "state" / "state.json"))
    assert unchanged(host)


# --------------------------------------------------------------------------------------------------
# The lock (exit 7: refused; contention defers with exit 0) and the lease


def test_a_lock_in_a_world_writable_directory_is_refused_and_the_switch_deferred(pyz, host):
    shared = host["path"] / "lock"  # what /run/lock is
    shared.mkdir()
    shared.chmod(0o1777)
    config = dict(host["config"], lock_path=str(shared / "gpulab-mirrors.lock"))
    rc, out, err = watch(pyz, host, config)
    assert rc == 7
    why = ("the lock directory %s is group- or world-writable (mode 1777), so another user can create or replace "
           "the lock; use a directory only root writes, such as /run/gpulab" % shared)
    assert out == "pypi: deferred failover a -> b (%s); switch deferred: %s; retried next run\n" % (
        out.split(" (", 1)[1].split("); switch deferred", 1)[0], why)
    one_line(err, "lock refused: %s; every switch is deferred until it is fixed" % why)
    assert unchanged(host) and list(shared.iterdir()) == []
    state = json.loads((host["path"] / "state" / "state.json").read_text())["services"]["pypi"]
    assert state["deferred"] == why and state["current"] == "a"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create another user's file")
def test_a_lock_file_another_user_created_is_refused(pyz, host):
    (host["path"] / "run" / "gpulab").mkdir(mode=0o755)
    lock = host["path"] / "run" / "gpulab" / "mirrors.lock"
    lock.write_text("")
    os.chown(str(lock), 65534, 65534)
    rc, out, err = watch(pyz, host)
    assert rc == 7 and "switch deferred: the lock file %s is owned by uid 65534, not root" % lock in out
    one_line(err, "lock refused: the lock file %s is owned by uid 65534, not root" % lock)
    assert unchanged(host)


def test_a_lease_from_the_future_is_expired_and_the_switch_happens(pyz, host):
    lease = host["path"] / "lease"
    lease.write_text("ansible-playbook failover.yml\n")
    ahead = time.time() + 3600  # a controller an hour ahead, or the host's clock stepped back
    os.utime(str(lease), (ahead, ahead))
    rc, out, err = watch(pyz, host)
    assert (rc, err) == (0, "")
    assert out.startswith("pypi: failover a -> b")
    assert "lease %s ignored: dated 3599 s in the future (more than %d s: a clock step)" % (lease, LEASE_SKEW_S) in out \
        or "lease %s ignored: dated 3600 s in the future" % lease in out
    assert host["mirrors"]["good"] in (host["path"] / "pip.conf").read_text()


def test_a_lease_a_little_ahead_is_fresh_and_defers(pyz, host):
    lease = host["path"] / "lease"
    lease.write_text("ansible-playbook site.yml\n")
    ahead = time.time() + LEASE_SKEW_S / 2  # clocks a little apart: still the Ansible run's lease
    os.utime(str(lease), (ahead, ahead))
    rc, out, _err = watch(pyz, host)
    assert rc == 0 and "switch deferred: an Ansible run holds the lease (ansible-playbook site.yml)" in out
    assert unchanged(host)


def test_a_lease_that_is_a_symlink_is_not_followed(pyz, host):
    (host["path"] / "elsewhere").write_text("ansible-playbook planted\n")
    (host["path"] / "lease").symlink_to(host["path"] / "elsewhere")
    rc, out, _err = watch(pyz, host)
    assert rc == 0 and out.startswith("pypi: failover a -> b") and "lease %s ignored" % (host["path"] / "lease") in out


# --------------------------------------------------------------------------------------------------
# Metrics: written by the zipapp itself (standard library only), never a reason to fail


def test_the_zipapp_writes_the_metrics_files(pyz, host):
    metrics_dir = host["path"] / "textfile"
    metrics_dir.mkdir()
    config = dict(host["config"], metrics_dir=str(metrics_dir), interval_s=120)
    rc, out, err = watch(pyz, host, config)
    assert (rc, err) == (0, ""), err
    assert out.startswith("pypi: failover a -> b")
    mirrors_text = (metrics_dir / "gpulab_mirrors.prom").read_text()
    watch_text = (metrics_dir / "gpulab_mirror_watch.prom").read_text()
    promtool.check_metrics(mirrors_text)
    promtool.check_metrics(watch_text)
    assert 'gpulab_mirror_active_info{mirror="b",service="pypi",status="ok",url="%s"} 1' % host["mirrors"]["good"] \
        in mirrors_text
    assert 'gpulab_mirror_switches_total{from="a",reason="failover",service="pypi",to="b"} 1' in mirrors_text
    assert "gpulab_mirror_watch_last_exit_status 0\n" in watch_text
    assert "gpulab_mirror_watch_interval_seconds 120\n" in watch_text
    assert sorted(os.listdir(str(metrics_dir))) == [
        ".gpulab-mirror_watch.json", ".gpulab-mirror_watch.lock", ".gpulab-mirrors.json", ".gpulab-mirrors.lock",
        "gpulab_mirror_watch.prom", "gpulab_mirrors.prom"]


def test_a_missing_metrics_dir_is_one_line_and_the_switch_and_status_are_the_same(pyz, host):
    config = dict(host["config"], metrics_dir=str(host["path"] / "no-such-dir"))
    rc, out, err = watch(pyz, host, config)
    assert rc == 0 and out.startswith("pypi: failover a -> b")
    one_line(err, "gpulab_metrics_dir: %s does not exist" % (host["path"] / "no-such-dir"))
    assert host["mirrors"]["good"] in (host["path"] / "pip.conf").read_text()
