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

import promtool
import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import config_merge, metrics, watch_cli
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


# --------------------------------------------------------------------------------------------------
# Metrics (metrics_dir): the mirrors and mirror_watch concerns after each run

def _metrics_lab(lab, directory):
    lab["config"]["metrics_dir"] = str(directory)
    lab["config"]["interval_s"] = 120
    return lab


def _prom(directory, concern):
    text = (directory / ("gpulab_%s.prom" % concern)).read_text()
    promtool.check_metrics(text)
    return text


def _active_lines(text):
    return sorted(line for line in text.splitlines() if line.startswith("gpulab_mirror_active_info{"))


def test_metrics_follow_a_failover_and_count_every_run(lab, tmp_path):
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir()
    _metrics_lab(lab, metrics_dir)
    first = lab["once"]()
    assert first["metrics"] == {"dir": str(metrics_dir), "written": ["mirrors", "mirror_watch"], "error": None}
    a, b = lab["urls"]["a"], lab["urls"]["b"]
    assert 'gpulab_mirror_active_info{mirror="a",service="pypi",status="ok",url="%s"} 1' % a \
        in _active_lines(_prom(metrics_dir, "mirrors"))
    watch_text = _prom(metrics_dir, "mirror_watch")
    assert 'gpulab_mirror_watch_decision_info{action="adopt",service="pypi"} 1' in watch_text
    assert "gpulab_mirror_watch_interval_seconds 120\n" in watch_text

    set_health(lab["mirrors"][0], False)
    lab["once"]()
    run = lab["once"]()
    assert run["services"]["pypi"]["action"] == "failover" and run["status"] == 0
    text = _prom(metrics_dir, "mirrors")
    assert [line for line in _active_lines(text) if 'service="pypi"' in line] == [
        'gpulab_mirror_active_info{mirror="b",service="pypi",status="ok",url="%s"} 1' % b]
    assert 'gpulab_mirror_switches_total{from="a",reason="failover",service="pypi",to="b"} 1' in text
    assert 'gpulab_mirror_switches_total{from="da",reason="failover",service="docker",to="db"} 1' in text
    assert 'gpulab_mirror_probe_success{mirror="a",service="pypi"} 0' in text
    assert 'gpulab_mirror_probe_success{mirror="b",service="pypi"} 1' in text
    assert 'gpulab_mirror_probe_duration_seconds{mirror="b",service="pypi"} ' in text
    watch_text = _prom(metrics_dir, "mirror_watch")
    assert 'gpulab_mirror_watch_runs_total{status="0"} 3' in watch_text
    assert "gpulab_mirror_watch_last_exit_status 0\n" in watch_text
    assert 'gpulab_mirror_watch_decision_info{action="failover",service="pypi"} 1' in watch_text
    assert 'action="adopt"' not in watch_text  # the last run's decisions only

    set_health(lab["mirrors"][0], True)
    lab["once"]()
    lab["once"]()
    text = _prom(metrics_dir, "mirrors")
    assert 'gpulab_mirror_switches_total{from="b",reason="switch_back",service="pypi",to="a"} 1' in text
    assert 'gpulab_mirror_switches_total{from="a",reason="failover",service="pypi",to="b"} 1' in text  # kept
    assert 'mirror="a",service="pypi",status="ok"' in "".join(_active_lines(text))
    assert 'gpulab_mirror_watch_runs_total{status="0"} 5' in _prom(metrics_dir, "mirror_watch")


def test_metrics_keep_the_run_status_a_switch_that_failed_exits_8_and_says_so(lab, tmp_path):
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir()
    _metrics_lab(lab, metrics_dir)
    lab["once"]()
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    (lab["path"] / "uv.toml").write_text("this is [not toml\n")
    run = lab["once"]()
    assert run["status"] == watch_cli.EXIT_SWITCH
    watch_text = _prom(metrics_dir, "mirror_watch")
    assert "gpulab_mirror_watch_last_exit_status 8\n" in watch_text
    assert 'gpulab_mirror_watch_runs_total{status="8"} 1' in watch_text
    text = _prom(metrics_dir, "mirrors")
    # the pypi switch did not happen: pypi stays on a, nothing counted for it (docker did switch)
    assert 'mirror="a",service="pypi"' in "".join(_active_lines(text))
    assert 'service="pypi",to="b"' not in text and 'reason="failover",service="docker"' in text


def test_check_mode_writes_no_metrics(lab, tmp_path):
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir()
    _metrics_lab(lab, metrics_dir)
    report = lab["once"](check=True)
    assert report["metrics"]["written"] == [] and report["metrics"]["error"] is None
    assert os.listdir(str(metrics_dir)) == []


def test_no_metrics_dir_means_no_metrics(lab, tmp_path):
    report = lab["once"]()
    assert report["metrics"] == {"dir": "", "written": [], "error": None}
    assert not list(tmp_path.glob("**/*.prom"))


@pytest.mark.parametrize("kind", ["missing", "a file", "unwritable"])
def test_an_unusable_metrics_dir_is_one_line_and_changes_neither_the_status_nor_the_switch(
        lab, tmp_path, monkeypatch, capsys, kind):
    metrics_dir = tmp_path / "textfile"
    if kind == "a file":
        metrics_dir.write_text("")
    elif kind == "unwritable":
        metrics_dir.mkdir()
        real_access = os.access
        # root may write anywhere: the check is os.access, as for any other user
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) == str(metrics_dir)
                            else real_access(path, mode, **kw))
    _metrics_lab(lab, metrics_dir)
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps(lab["config"]))
    assert watch_cli.main(["--config", str(path), "--once"], out=io.StringIO()) == 0
    set_health(lab["mirrors"][0], False)
    assert watch_cli.main(["--config", str(path), "--once"], out=io.StringIO()) == 0
    out = io.StringIO()
    assert watch_cli.main(["--config", str(path), "--once", "--json"], out=out) == 0
    report = json.loads(out.getvalue())
    assert report["services"]["pypi"]["action"] == "failover" and index_url(lab) == lab["urls"]["b"]
    assert report["status"] == 0 and report["metrics"]["written"] == []
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # one line per run
    assert all(line == "gpulab-mirror-watch: " + report["metrics"]["error"] for line in lines)
    assert report["metrics"]["error"].startswith("gpulab_metrics_dir: %s " % metrics_dir)
    assert not list(tmp_path.glob("**/*.prom"))


def test_a_full_disk_keeps_the_previous_metrics_files(lab, tmp_path, monkeypatch, capsys):
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir()
    _metrics_lab(lab, metrics_dir)
    lab["once"]()
    before = {name: (metrics_dir / name).read_bytes() for name in os.listdir(str(metrics_dir))}
    assert "gpulab_mirrors.prom" in before and "gpulab_mirror_watch.prom" in before

    def full(target, text, mode=0o644, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)

    monkeypatch.setattr(metrics, "replace_text", full)
    set_health(lab["mirrors"][0], False)
    lab["once"]()
    run = lab["once"]()
    assert run["status"] == 0 and run["services"]["pypi"]["action"] == "failover"
    assert index_url(lab) == lab["urls"]["b"]
    assert run["metrics"]["error"].startswith("gpulab_metrics_dir: cannot write %s" % metrics_dir)
    assert "no space left on the device; the previous file is kept" in run["metrics"]["error"]
    assert run["errors"] == [run["metrics"]["error"]]
    assert {name: (metrics_dir / name).read_bytes() for name in os.listdir(str(metrics_dir))} == before


def test_a_run_stopped_by_an_unusable_state_file_still_counts_its_exit_status(lab, tmp_path, capsys):
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir()
    _metrics_lab(lab, metrics_dir)
    (lab["path"] / "state.json").write_text("{not json")
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps(lab["config"]))
    assert watch_cli.main(["--config", str(path), "--once"], out=io.StringIO()) == watch_cli.EXIT_STATE == 4
    assert capsys.readouterr().err.count("\n") == 1
    watch_text = _prom(metrics_dir, "mirror_watch")
    assert "gpulab_mirror_watch_last_exit_status 4\n" in watch_text
    assert 'gpulab_mirror_watch_runs_total{status="4"} 1' in watch_text
    assert "decision_info" not in watch_text and not (metrics_dir / "gpulab_mirrors.prom").exists()
