# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab-mirror-watch end to end against loopback mirrors: real probes, real files, real pip.conf."""

from __future__ import annotations

import configparser
import errno
import fcntl
import io
import json
import os
import stat
import time

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import config_merge, watch_cli
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import mask_url
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import render_client_config
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import watch_config
from mirror_servers import Route, healthy_pypi_server


@pytest.fixture
def mirrors():
    servers = [healthy_pypi_server(), healthy_pypi_server()]
    for server in servers:
        server.route("/ok", 200, {"Content-Type": "text/plain"}, b"ok\n")
    yield servers
    for server in servers:
        server.stop()


def set_health(server, healthy):
    server.routes["/simple/pip/"] = Route(200, {"Content-Type": "text/html"}, _PAGE) if healthy else Route(503)
    server.routes["/ok"] = Route(200, {"Content-Type": "text/plain"}, b"ok\n") if healthy else Route(503)


_PAGE = ('<html><body><a href="../../p/pip-24.0-py3-none-any.whl#sha256=00">pip-24.0-py3-none-any.whl</a>'
         "</body></html>\n")


def selection(name, url):
    entry = {"name": name, "url": url, "url_masked": mask_url(url), "insecure": True, "status": "ok", "latency_ms": 1}
    return dict(entry, ranked=[dict(entry)], rejected=[], message="")


@pytest.fixture
def lab(tmp_path, mirrors):
    urls = {"a": mirrors[0].url + "/simple", "b": mirrors[1].url + "/simple"}
    catalog = {"pypi": [{"name": "a", "url": urls["a"], "insecure": True},
                        {"name": "b", "url": urls["b"], "insecure": True}],
               "docker": [{"name": "da", "url": mirrors[0].url, "insecure": True},
                          {"name": "db", "url": mirrors[1].url, "insecure": True}]}
    services = {"pypi": {"kind": "pypi", "project": "pip"}, "docker": {"kind": "http", "path": "ok"}}
    clients = {"pip": {"conf_path": str(tmp_path / "pip.conf"), "uv_conf_path": str(tmp_path / "uv.toml")},
               "docker": {"daemon_json_path": str(tmp_path / "daemon.json"), "containerd_certs_dir": str(tmp_path / "certs.d")},
               "conda": {"condarc_path": str(tmp_path / "condarc")}}
    settings = {"fact_path": str(tmp_path / "facts.d" / "gpulab_mirrors.fact"), "state_path": str(tmp_path / "state.json"),
                "lock_path": str(tmp_path / "lock"), "lease_path": str(tmp_path / "lease"), "lock_wait_s": 1}
    built = watch_config(catalog, services, {"timeout_s": 2}, None, clients, settings)
    config = built["config"]
    # What site.yml left: the files on mirror a, the fact naming a.
    pip_conf = render_client_config("[global]\nuser-key = mine\n", "pip_conf", selection("a", urls["a"]),
                                    {"timeout": 10, "retries": 2})["content"]
    (tmp_path / "pip.conf").write_text(pip_conf)
    (tmp_path / "uv.toml").write_text(render_client_config("", "uv_toml", selection("a", urls["a"]))["content"])
    (tmp_path / "daemon.json").write_text(json.dumps({"registry-mirrors": [mirrors[0].url], "runtimes": {"nvidia": {
        "path": "nvidia-container-runtime"}}}, indent=2) + "\n")
    os.makedirs(tmp_path / "facts.d")
    (tmp_path / "facts.d" / "gpulab_mirrors.fact").write_text(watch_cli.nice_json({
        "pypi": {"name": "a", "status": "ok", "url_masked": urls["a"]},
        "docker": {"name": "da", "status": "ok", "url_masked": mirrors[0].url}}))
    calls = []

    def fake_systemctl(*args):
        calls.append(args)
        return 0, ""

    def once(check=False):
        return watch_cli.run_once(config, check=check, run=fake_systemctl)

    return {"config": config, "once": once, "urls": urls, "path": tmp_path, "calls": calls, "mirrors": mirrors}


def index_url(lab):
    parser = configparser.RawConfigParser()
    parser.read(str(lab["path"] / "pip.conf"))
    return parser.get("global", "index-url")


def fact(lab):
    return json.loads((lab["path"] / "facts.d" / "gpulab_mirrors.fact").read_text())


def test_a_healthy_chosen_mirror_is_the_only_one_probed(lab):
    report = lab["once"]()
    assert report["services"]["pypi"]["action"] == "adopt"  # first run: the fact's choice is adopted
    assert report["services"]["pypi"]["probed"] == ["a"]
    assert lab["mirrors"][1].requests == []  # b (and docker's db) not asked at all while a is healthy
    assert lab["once"]()["services"]["pypi"]["action"] == "ok"


def test_failover_after_two_bad_runs_and_back_after_two_good_runs(lab):
    lab["once"]()
    before = (lab["path"] / "pip.conf").read_text()
    set_health(lab["mirrors"][0], False)
    first = lab["once"]()["services"]["pypi"]
    assert first["action"] == "suspect" and (lab["path"] / "pip.conf").read_text() == before
    run2 = lab["once"]()
    second = run2["services"]["pypi"]
    assert second["action"] == "failover" and second["to"] == "b"
    assert run2["services"]["docker"]["action"] == "failover", run2["services"]["docker"]
    assert set(second["probed"]) == {"a", "b"}
    assert index_url(lab) == lab["urls"]["b"]
    assert "user-key = mine" in (lab["path"] / "pip.conf").read_text()  # the user's key stays
    assert lab["urls"]["b"] in (lab["path"] / "uv.toml").read_text()
    assert fact(lab)["pypi"] == {"name": "b", "status": "ok", "url_masked": lab["urls"]["b"]}
    assert second["line"].startswith("pypi: failover a -> b")
    # docker: daemon.json's registry-mirrors switch with a reload, other keys stay.
    daemon = json.loads((lab["path"] / "daemon.json").read_text())
    assert daemon["registry-mirrors"] == [lab["mirrors"][1].url]
    assert daemon["runtimes"] == {"nvidia": {"path": "nvidia-container-runtime"}}
    assert ("reload", "docker") in lab["calls"] and not any("restart" in c for c in lab["calls"])
    assert not (lab["path"] / "certs.d").exists()  # hosts.toml was never written by Ansible: left alone

    set_health(lab["mirrors"][0], True)
    back1 = lab["once"]()["services"]["pypi"]
    assert back1["action"] == "candidate" and index_url(lab) == lab["urls"]["b"]
    back2 = lab["once"]()["services"]["pypi"]
    assert back2["action"] == "switch_back" and back2["to"] == "a"
    assert index_url(lab) == lab["urls"]["a"]
    assert (lab["path"] / "pip.conf").read_text() == before  # byte for byte what site.yml wrote
    assert fact(lab)["pypi"]["name"] == "a"


def test_check_mode_reports_and_writes_nothing(lab):
    lab["once"]()
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    state = (lab["path"] / "state.json").read_text()
    report = lab["once"](check=True)
    assert report["services"]["pypi"]["action"] == "failover"
    assert str(lab["path"] / "pip.conf") in report["services"]["pypi"]["written"]
    assert "check mode: nothing written" in report["services"]["pypi"]["notes"]
    assert index_url(lab) == lab["urls"]["a"] and (lab["path"] / "state.json").read_text() == state
    assert lab["calls"] == []


def test_a_fresh_ansible_lease_defers_the_switch(lab):
    lab["once"]()
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    (lab["path"] / "lease").write_text("failover.yml\n")
    report = lab["once"]()["services"]["pypi"]
    assert report["line"].startswith("pypi: deferred failover a -> b")
    assert report["deferred"] == "an Ansible run holds the lease (failover.yml)" and report["written"] == []
    assert "; switch deferred: an Ansible run holds the lease (failover.yml)" in report["line"]
    saved = json.loads((lab["path"] / "state.json").read_text())["services"]["pypi"]
    assert saved["deferred"] == "an Ansible run holds the lease (failover.yml)" and saved["current"] == "a"
    assert index_url(lab) == lab["urls"]["a"]
    os.utime(lab["path"] / "lease", (time.time() - 4000, time.time() - 4000))  # stale lease
    assert lab["once"]()["services"]["pypi"]["action"] == "failover"
    assert index_url(lab) == lab["urls"]["b"]


def test_an_ansible_run_that_records_another_choice_resets_the_counts(lab):
    lab["once"]()
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    data = fact(lab)
    data["pypi"]["name"] = "b"
    (lab["path"] / "facts.d" / "gpulab_mirrors.fact").write_text(watch_cli.nice_json(data))
    report = lab["once"]()["services"]["pypi"]
    assert report["action"] == "adopt" and report["from"] == "b"


def test_condarc_without_pyyaml_is_skipped_and_said(lab, monkeypatch):
    cfg = lab["config"]
    cfg["services"]["pypi"]["clients"].append({"client": "condarc", "path": str(lab["path"] / "condarc"), "options": {}})
    (lab["path"] / "condarc").write_text("channel_alias: http://x.invalid/cloud\n")
    monkeypatch.setattr(config_merge, "yaml", None)
    lab["once"]()
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    report = lab["once"]()["services"]["pypi"]
    assert report["action"] == "failover"
    assert any("PyYAML" in note for note in report["notes"])
    assert index_url(lab) == lab["urls"]["b"]


def test_main_prints_one_line_per_service_and_json(lab, tmp_path):
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps(lab["config"]))
    out = io.StringIO()
    assert watch_cli.main(["--config", str(path), "--once"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("docker: adopt da") and lines[1].startswith("pypi: ")
    out = io.StringIO()
    assert watch_cli.main(["--config", str(path), "--check", "--json"], out=out) == 0
    assert json.loads(out.getvalue())["check"] is True


def test_a_missing_configuration_exits_3_naming_the_file_and_the_role(tmp_path, capsys):
    assert watch_cli.main(["--config", str(tmp_path / "none.json"), "--once"]) == watch_cli.EXIT_CONFIG == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "none.json") in err and "mirror_watch role" in err


def test_a_held_lock_defers_the_switch(lab):
    lab["once"]()
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    lab["config"]["lock_wait_s"] = 0.3
    with open(lab["config"]["lock_path"], "a", encoding="utf-8") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        run = lab["once"]()
        report = run["services"]["pypi"]
    # contention is not an error: the run completes and the switch waits for the next one
    assert run["status"] == 0 and run["errors"] == []
    assert report["deferred"].startswith("%s is held by another writer (pid %d)" % (lab["config"]["lock_path"], os.getpid()))
    assert "; switch deferred: %s is held by another writer" % lab["config"]["lock_path"] in report["line"]
    assert index_url(lab) == lab["urls"]["a"]
    assert lab["once"]()["services"]["pypi"]["action"] == "failover"


def test_a_file_that_cannot_be_rendered_is_left_and_the_switch_not_recorded(lab):
    lab["once"]()
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    (lab["path"] / "uv.toml").write_text("this is [not toml\n")
    report = lab["once"]()["services"]["pypi"]
    assert any("uv.toml not switched" in note for note in report["notes"])
    assert "switch not recorded: retried next run" in report["notes"]
    assert fact(lab)["pypi"]["name"] == "a" and (lab["path"] / "uv.toml").read_text() == "this is [not toml\n"


def test_a_switch_writes_as_the_config_roles_do_backup_and_mode(lab):
    lab["once"]()
    (lab["path"] / "pip.conf").chmod(0o600)  # a mode the roles never set: the switch puts theirs back
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    lab["once"]()
    assert index_url(lab) == lab["urls"]["b"]
    assert (lab["path"] / "pip.conf").stat().st_mode & 0o777 == 0o644  # no credential in it
    backups = [p.name for p in lab["path"].iterdir() if p.name.startswith("pip.conf.") and p.name.endswith("~")]
    assert len(backups) == 1
    assert lab["urls"]["a"] in (lab["path"] / backups[0]).read_text()


# --------------------------------------------------------------------------------------------------
# Errors in-process (the zipapp runs of the same: tests/unit/roles/mirror_watch/test_watcher_errors.py)


def _files(lab):
    return {name: (lab["path"] / name).read_bytes() for name in ("pip.conf", "uv.toml", "daemon.json")}


def test_a_full_state_directory_is_one_line_and_exit_6(lab, tmp_path, monkeypatch, capsys):
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps(lab["config"]))
    before = _files(lab)

    def full(target, text, mode=0o644):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)

    monkeypatch.setattr(watch_cli, "write_atomic", full)
    assert watch_cli.main(["--config", str(path), "--once"], out=io.StringIO()) == watch_cli.EXIT_STATE_WRITE == 6
    err = capsys.readouterr().err
    assert err == ("gpulab-mirror-watch: cannot write the state file %s (No space left on device): this run's counts "
                   "are lost\n" % lab["config"]["state_path"])
    assert _files(lab) == before


def test_a_local_fact_that_cannot_be_written_leaves_the_switch_unrecorded_exit_8(lab, monkeypatch):
    lab["once"]()
    set_health(lab["mirrors"][0], False)
    lab["once"]()

    def read_only(path, service, selection):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(watch_cli, "record_fact", read_only)
    run = lab["once"]()
    report = run["services"]["pypi"]
    assert run["status"] == watch_cli.EXIT_SWITCH == 8
    assert "pypi: switch to b not completed (see its line)" in run["errors"]
    assert "the local fact %s was not written (Read-only file system)" % lab["config"]["fact_path"] in report["notes"]
    assert "switch not recorded: retried next run" in report["notes"]
    saved = json.loads((lab["path"] / "state.json").read_text())["services"]["pypi"]
    assert saved["current"] == "a"  # the next run sees a again, fails over again and records it


def test_an_unexpected_error_is_one_masked_line_and_exit_1(lab, tmp_path, monkeypatch, capsys):
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps(lab["config"]))
    before = _files(lab)

    def broken(*args, **kwargs):
        raise RuntimeError("boom at http://user:s3cr3t-pw@127.0.0.1:1/simple\nsecond line")

    monkeypatch.setattr(watch_cli, "run_once", broken)
    assert watch_cli.main(["--config", str(path), "--once"], out=io.StringIO()) == watch_cli.EXIT_BUG == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s3cr3t-pw" not in err and "Traceback" not in err
    assert err.startswith("gpulab-mirror-watch: unexpected error (a bug; please report it): RuntimeError: boom at ")
    assert "\\nsecond line" in err
    assert _files(lab) == before


def test_check_mode_takes_no_lock_and_creates_no_lock_directory(lab):
    lab["config"]["lock_path"] = str(lab["path"] / "run" / "gpulab" / "mirrors.lock")
    lab["once"](check=True)
    assert not (lab["path"] / "run").exists()


def test_a_client_file_that_is_a_fifo_is_left_and_the_run_exits_8(lab):
    lab["once"]()
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    (lab["path"] / "uv.toml").unlink()
    os.mkfifo(str(lab["path"] / "uv.toml"))  # a reader would block for ever on it
    run = lab["once"]()
    report = run["services"]["pypi"]
    assert run["status"] == watch_cli.EXIT_SWITCH and "pypi: switch to b not completed (see its line)" in run["errors"]
    assert any(note.startswith("%s not switched: " % (lab["path"] / "uv.toml")) for note in report["notes"])
    assert "switch not recorded: retried next run" in report["notes"] and fact(lab)["pypi"]["name"] == "a"
    assert stat.S_ISFIFO(os.lstat(str(lab["path"] / "uv.toml")).st_mode)
