# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mirror_config through main(): one client file, written as every writer of the collection writes."""
from __future__ import annotations

import grp
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpulab.provision.plugins.module_utils import client_files
from ansible_collections.gpulab.provision.plugins.module_utils.backups import PruneError
from ansible_collections.gpulab.provision.plugins.modules import mirror_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SECRET = "pa55-w0rd-x"
SEL = {"status": "ok", "name": "m", "url": "https://u:%s@m.example/simple" % SECRET,
       "ranked": [{"name": "m", "url": "https://u:%s@m.example/simple" % SECRET}]}
CACHE = {"status": "ok", "name": "cache-n1", "ranked": [{"name": "cache-n1", "url": "http://127.0.40.10:5001",
                                                         "insecure": True}]}


def run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            mirror_config.main()
    out = capsys.readouterr().out
    return exit_info.value.code != 0, json.loads(out.strip().splitlines()[-1]), out


def test_a_credentialed_pip_conf_is_0640_and_never_shown(tmp_path, capsys):
    path = tmp_path / "etc" / "pip.conf"
    failed, result, out = run(capsys, {"client": "pip_conf", "path": str(path), "selection": SEL,
                                       "_ansible_diff": True})
    assert not failed, result
    assert result["changed"] and path.stat().st_mode & 0o777 == 0o640
    assert SECRET in path.read_text() and SECRET not in out and "diff" not in result
    assert result["summary"]["holds_credentials"] is True
    failed, again, _out = run(capsys, {"client": "pip_conf", "path": str(path), "selection": SEL})
    assert not failed and again["changed"] is False


def test_a_registry_hosts_toml_with_diff_backup_and_check_mode(tmp_path, capsys):
    path = tmp_path / "certs.d" / "ghcr.io" / "hosts.toml"
    args = {"client": "hosts_toml", "path": str(path), "selection": CACHE, "options": {"registry": "ghcr.io"},
            "backup_keep": 0}
    failed, result, _out = run(capsys, dict(args, _ansible_check_mode=True, _ansible_diff=True))
    assert not failed and result["changed"] and not path.exists()
    assert '[host."http://127.0.40.10:5001"]' in result["diff"]["after"]
    failed, result, _out = run(capsys, args)
    assert not failed and path.exists() and 'server = "https://ghcr.io"' in path.read_text()
    # every cache node down: the registry alone; the old file backed up, then pruned (backup_keep 0)
    failed, result, _out = run(capsys, dict(args, selection={"status": "none", "ranked": []}))
    assert not failed and result["changed"] and "[host." not in path.read_text()
    assert result["removed_backups"] == [result["backup_file"]]
    assert sorted(p.name for p in path.parent.iterdir()) == ["hosts.toml"]


def test_a_broken_file_fails_naming_it_and_stays(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    path.write_text('{"log-driver": ')
    failed, result, _out = run(capsys, {"client": "daemon_json", "path": str(path), "selection": CACHE})
    assert failed and str(path) in result["msg"]
    assert path.read_text() == '{"log-driver": '


def test_create_false_leaves_a_missing_file_missing(tmp_path, capsys):
    path = tmp_path / "uv.toml"
    failed, result, _out = run(capsys, {"client": "uv_toml", "path": str(path), "selection": SEL, "create": False})
    assert not failed and not result["changed"] and not path.exists()
    assert result["summary"]["action"] == "absent"


def test_validate_runs_on_the_new_file_and_a_failure_keeps_the_old_one(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    path.write_text("{}\n")
    args = {"client": "daemon_json", "path": str(path), "selection": CACHE, "validate": "grep -q never-there %s"}
    failed, result, _out = run(capsys, args)
    assert failed and "the new file was rejected" in result["msg"] and "the old one is kept" in result["msg"]
    assert path.read_text() == "{}\n" and [p.name for p in tmp_path.iterdir()] == ["daemon.json"]
    failed, result, _out = run(capsys, dict(args, validate="grep -q registry-mirrors %s"))
    assert not failed and result["changed"] and "127.0.40.10:5001" in path.read_text()
    failed, result, _out = run(capsys, dict(args, validate="true"))
    assert failed and "must contain %s" in result["msg"]


# files: several files of one selection in one call (pip_mirror writes pip.conf and uv.toml so)

PLAIN = {"status": "ok", "name": "lab1", "url": "http://127.0.0.1:9/simple", "insecure": True,
         "ranked": [{"name": "lab1", "url": "http://127.0.0.1:9/simple", "insecure": True}]}


def pip_and_uv(tmp_path, **extra):
    return dict({"files": [{"client": "pip_conf", "path": str(tmp_path / "pip.conf"),
                            "options": {"service": "pypi", "timeout": 10, "retries": 2}},
                           {"client": "uv_toml", "path": str(tmp_path / "uv" / "uv.toml"),
                            "options": {"service": "pypi"}}]}, **extra)


def test_files_writes_pip_conf_and_uv_toml_in_one_call_then_changes_nothing(tmp_path, capsys):
    (tmp_path / "pip.conf").write_text("[global]\ndisable-pip-version-check = true\n")
    failed, result, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN))
    assert not failed, result
    assert result["changed"] is True
    assert [(f["path"], f["client"], f["changed"]) for f in result["files"]] == [
        (str(tmp_path / "pip.conf"), "pip_conf", True), (str(tmp_path / "uv" / "uv.toml"), "uv_toml", True)]
    pip_conf = (tmp_path / "pip.conf").read_text()
    assert "index-url = http://127.0.0.1:9/simple" in pip_conf and "disable-pip-version-check = true" in pip_conf
    assert 'url = "http://127.0.0.1:9/simple"' in (tmp_path / "uv" / "uv.toml").read_text()
    # the replaced pip.conf is backed up; uv.toml was new, so it has none
    assert "backup_file" in result["files"][0] and "backup_file" not in result["files"][1]
    assert result["summary"]["action"] == "files" and result["summary"]["changed_paths"] == result["summary"]["paths"]
    assert all(f["summary"]["action"] == "render" for f in result["files"])
    assert (tmp_path / "pip.conf").stat().st_mode & 0o777 == 0o644
    failed, again, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN))
    assert not failed and again["changed"] is False
    assert [f["changed"] for f in again["files"]] == [False, False] and again["summary"]["changed_paths"] == []


def test_files_one_broken_file_fails_naming_it_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "uv").mkdir()
    (tmp_path / "uv" / "uv.toml").write_text("index = [\n")
    (tmp_path / "pip.conf").write_text("[global]\nindex-url = https://old.example/simple\n")
    failed, result, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN))
    assert failed
    assert str(tmp_path / "uv" / "uv.toml") in result["msg"] and "not valid TOML" in result["msg"]
    assert "left untouched. Nothing was written (" in result["msg"] and result["paths"] == [str(tmp_path / "uv" / "uv.toml")]
    # pip.conf came first and rendered fine, and is still not touched
    assert (tmp_path / "pip.conf").read_text() == "[global]\nindex-url = https://old.example/simple\n"
    assert (tmp_path / "uv" / "uv.toml").read_text() == "index = [\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pip.conf", "uv"]


def test_files_check_mode_writes_nothing_and_diffs_each_file(tmp_path, capsys):
    failed, result, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN, _ansible_check_mode=True,
                                                  _ansible_diff=True))
    assert not failed and result["changed"] is True
    assert [f["changed"] for f in result["files"]] == [True, True]
    assert not (tmp_path / "pip.conf").exists() and not (tmp_path / "uv").exists()
    assert [d["after_header"] for d in result["diff"]] == [str(tmp_path / "pip.conf"), str(tmp_path / "uv" / "uv.toml")]
    assert "index-url = http://127.0.0.1:9/simple" in result["diff"][0]["after"]


def test_files_with_a_credential_are_0640_with_the_group_and_never_shown(tmp_path, capsys):
    group = "daemon" if os.geteuid() == 0 else "root"
    args = pip_and_uv(tmp_path, selection=SEL, credentials_group=group, _ansible_diff=True)
    failed, result, out = run(capsys, args)
    assert not failed, result
    assert result["changed"] and "diff" not in result and SECRET not in out
    assert result["summary"]["holds_credentials"] is True and result["summary"]["sensitive"] is True
    for path in (tmp_path / "pip.conf", tmp_path / "uv" / "uv.toml"):
        assert path.stat().st_mode & 0o777 == 0o640 and SECRET in path.read_text()
        if os.geteuid() == 0:
            assert grp.getgrgid(path.stat().st_gid).gr_name == "daemon"
    failed, again, out = run(capsys, dict(args, _ansible_check_mode=True))
    assert not failed and again["changed"] is False and SECRET not in out


def test_files_warn_returns_the_extra_index_url_warning(tmp_path, capsys, monkeypatch):
    # AnsibleModule.warn returns the warning with the result, or displays it where the controller's code
    # is loaded (as in this test process): record what the module asks it to warn about
    seen = []
    monkeypatch.setattr(mirror_config.SecretArgsModule, "warn", lambda _self, warning, **_kw: seen.append(warning))
    (tmp_path / "pip.conf").write_text("[global]\nextra-index-url = https://corp.example/simple\n")
    warning = "extra-index-url present in %s" % (tmp_path / "pip.conf")
    failed, quiet, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN, _ansible_check_mode=True))
    assert not failed and warning in quiet["summary"]["warnings"][0] and seen == []
    failed, result, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN, warn=True))
    assert not failed and result["summary"]["warnings"] == result["files"][0]["summary"]["warnings"]
    assert len(seen) == 1 and warning in seen[0]


def test_files_create_per_entry_leaves_a_missing_file_missing(tmp_path, capsys):
    args = pip_and_uv(tmp_path, selection=PLAIN)
    args["files"][1]["create"] = False
    failed, result, _out = run(capsys, args)
    assert not failed and [f["changed"] for f in result["files"]] == [True, False]
    assert result["files"][1]["summary"]["action"] == "absent" and not (tmp_path / "uv").exists()


def test_files_a_rejected_write_stops_there_and_says_what_was_written(tmp_path, capsys):
    args = pip_and_uv(tmp_path, selection=PLAIN)
    args["files"][1]["validate"] = "grep -q never-there %s"
    failed, result, _out = run(capsys, args)
    assert failed and result["changed"] is True
    assert "the new file was rejected" in result["msg"] and "Written before it: %s" % (tmp_path / "pip.conf") in result["msg"]
    assert (tmp_path / "pip.conf").exists() and not (tmp_path / "uv" / "uv.toml").exists()
    assert [f["path"] for f in result["files"]] == [str(tmp_path / "pip.conf")]


@pytest.mark.parametrize("args, message", [
    ({"client": "pip_conf", "files": []}, "mutually exclusive"),
    ({}, "one of the following is required: client, files"),
    ({"client": "pip_conf"}, "parameters are required together: client, path"),
    ({"files": [{"client": "pip_conf", "path": "/x/pip.conf"}, {"client": "uv_toml", "path": "/x/pip.conf"}]},
     "files[1].path: /x/pip.conf is given twice"),
    ({"files": [], "options": {"service": "pypi"}}, "give each file its own (files[].options)"),
    ({"files": [{"client": "uv_toml", "path": "/x/uv.toml", "validate": "true"}]}, "files[0].validate: 'true' must contain %s"),
])
def test_files_bad_arguments_are_named(args, message, capsys):
    failed, result, _out = run(capsys, dict(args, selection=PLAIN))
    assert failed and message in result["msg"], result["msg"]


def test_files_empty_changes_nothing(capsys):
    failed, result, _out = run(capsys, {"files": [], "selection": PLAIN})
    assert not failed and result["changed"] is False and result["files"] == []


# "status none, file absent" and "status kept, file absent" for every client file.
# One summary shape whatever happened (the roles read its keys: docker_mirror read summary.needs of a
# daemon.json skipped for none and failed with "object of type 'dict' has no attribute 'needs'").

NVIDIA = {"nvidia": {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}}
KEPT_DOCKER = {"status": "kept", "name": "lab1", "url": "http://127.0.0.1:9", "insecure": True,
               "ranked": [{"name": "lab1", "url": "http://127.0.0.1:9", "insecure": True}]}
SUMMARY_KEYS = {"client", "path", "action", "status", "mirror", "url_masked", "reason", "warnings", "changed",
                "holds_credentials", "sensitive", "needs", "changed_keys", "present"}
ABSENT_CASES = [("pip_conf", "etc/pip.conf", {}), ("uv_toml", "uv/uv.toml", {}), ("condarc", "conda/.condarc", {}),
                ("daemon_json", "docker/daemon.json", {}), ("hosts_toml", "certs.d/docker.io/hosts.toml", {}),
                ("docker_proxy", "docker.service.d/gpulab-proxy.conf", {})]


@pytest.mark.parametrize("selection", [{"status": "none", "name": None, "ranked": []}, {"status": "none"}, KEPT_DOCKER],
                         ids=["none", "none-bare", "kept"])
@pytest.mark.parametrize("client, name, options", ABSENT_CASES, ids=[case[0] for case in ABSENT_CASES])
@pytest.mark.parametrize("create", [True, False])
def test_an_absent_file_with_nothing_healthy_is_left_absent_with_the_whole_summary(
        tmp_path, capsys, client, name, options, selection, create):
    path = tmp_path / name
    failed, result, _out = run(capsys, {"client": client, "path": str(path), "selection": selection,
                                        "options": options, "create": create})
    assert not failed, result
    assert result["changed"] is False and not path.exists() and not path.parent.exists()
    summary = result["summary"]
    assert SUMMARY_KEYS <= set(summary), SUMMARY_KEYS - set(summary)
    assert summary["client"] == client and summary["path"] == str(path) and summary["present"] is False
    assert summary["needs"] == "none" and summary["changed_keys"] == [] and isinstance(summary["warnings"], list)
    assert summary["status"] == selection["status"]


@pytest.mark.parametrize("selection", [{"status": "none", "name": None, "ranked": []}, KEPT_DOCKER], ids=["none", "kept"])
def test_daemon_json_absent_with_nothing_healthy_still_gets_the_fragments(tmp_path, capsys, selection):
    """A fresh GPU host on an outage day: the nvidia runtime and live-restore are merged, no mirror key."""
    path = tmp_path / "docker" / "daemon.json"
    args = {"client": "daemon_json", "path": str(path), "selection": selection,
            "options": {"service": "docker", "live_restore": True, "fragments": NVIDIA, "extra": {}}}
    failed, plan, _out = run(capsys, dict(args, _ansible_check_mode=True))
    assert not failed, plan
    assert plan["changed"] is True and not path.exists()
    # both keys are ones dockerd re-reads on SIGHUP
    assert plan["summary"]["needs"] == "reload" and plan["summary"]["changed_keys"] == ["live-restore", "runtimes"]
    failed, result, _out = run(capsys, args)
    assert not failed and result["changed"] is True and "backup_file" not in result
    written = json.loads(path.read_text())
    assert written == {"live-restore": True, "runtimes": NVIDIA["nvidia"]["runtimes"]}
    assert result["summary"]["registry_mirrors"] == [] and result["summary"]["present"] is False
    failed, again, _out = run(capsys, args)
    assert not failed and again["changed"] is False and again["summary"]["needs"] == "none"
    assert again["summary"]["present"] is True


# A FIFO at the path used to block the module for ever.

@pytest.fixture
def no_hang():
    def hung(*_args):
        raise AssertionError("mirror_config blocked on the path for 10 s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink to a device"])
@pytest.mark.parametrize("check_mode", [False, True])
def test_a_fifo_or_device_at_the_path_fails_at_once_naming_it(tmp_path, capsys, no_hang, kind, check_mode):
    path = tmp_path / "pip.conf"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to("/dev/null")
    failed, result, _out = run(capsys, {"client": "pip_conf", "path": str(path), "selection": PLAIN,
                                        "_ansible_check_mode": check_mode})
    assert failed and result.get("changed", False) is False
    assert "%s is a" % path in result["msg"] and "not a regular file" in result["msg"], result["msg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pip.conf"]


def test_files_a_fifo_among_the_files_writes_none_of_them(tmp_path, capsys, no_hang):
    os.mkfifo(tmp_path / "pip.conf")
    failed, result, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN))
    assert failed and "%s is a FIFO" % (tmp_path / "pip.conf") in result["msg"] and "Nothing was written" in result["msg"]
    assert not (tmp_path / "uv").exists()


# Backups under attack, a full disk, pruning after the write.

def test_a_full_disk_fails_the_write_cleanly_and_leaves_no_partial_backup(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        path = disk / "pip.conf"
        # 24 KiB: the new file fits beside it, its backup does not (16 pages in all)
        old = "[global]\n" + "".join("# padding line %05d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n" % i
                                     for i in range(400))
        path.write_text(old)
        failed, result, _out = run(capsys, {"client": "pip_conf", "path": str(path), "selection": PLAIN})
        assert failed and result.get("changed", False) is False
        assert "no backup could be made" in result["msg"] and "No space left" in result["msg"], result["msg"]
        assert path.read_text() == old and sorted(p.name for p in disk.iterdir()) == ["pip.conf"]
        # without a backup the same write fits: the failure was the backup's, and it said so
        failed, result, _out = run(capsys, {"client": "pip_conf", "path": str(path), "selection": PLAIN,
                                            "backup": False})
        assert not failed and result["changed"] and "index-url = http://127.0.0.1:9/simple" in path.read_text()
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_planted_symlink_and_a_directory_named_like_backups_change_nothing_but_the_file(tmp_path, capsys):
    path, victim = tmp_path / "pip.conf", tmp_path / "victim.conf"
    path.write_text("[global]\n")
    victim.write_text("precious\n")
    now = time.time()
    planted = [client_files.backup_name(str(path), os.getpid(), now + delta) for delta in range(4)]
    for name in planted:
        os.symlink(victim, name)
    (tmp_path / "pip.conf.1.2099-01-01@00:00:00~").mkdir()
    failed, result, _out = run(capsys, {"client": "pip_conf", "path": str(path), "selection": PLAIN, "backup_keep": 1})
    assert not failed and result["changed"] is True, result
    assert victim.read_text() == "precious\n" and all(os.path.islink(name) for name in planted)
    assert open(result["backup_file"]).read() == "[global]\n" and result["backup_file"] not in planted
    assert (tmp_path / "pip.conf.1.2099-01-01@00:00:00~").is_dir()


def test_a_pruning_failure_after_the_write_reports_changed_with_a_warning(tmp_path, capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(mirror_config.SecretArgsModule, "warn", lambda _self, warning, **_kw: seen.append(warning))

    def fails(path, _keep):
        raise PruneError("cannot remove %s.1.2026-01-01@00:00:00~ (Permission denied)" % path, [], ["x"])
    monkeypatch.setattr(client_files, "prune", fails)
    path = tmp_path / "pip.conf"
    path.write_text("[global]\n")
    failed, result, _out = run(capsys, {"client": "pip_conf", "path": str(path), "selection": PLAIN})
    assert not failed and result["changed"] is True and "backup_file" in result
    assert "index-url = http://127.0.0.1:9/simple" in path.read_text()
    assert len(seen) == 1 and "was written, but its old backups were not all pruned" in seen[0]


# A proxy password in files[].options.proxy was echoed at -vvv (only keys named url
# were masked). Real ansible-playbook -vvv, a local-connection host, every file under the test's
# directory: no secret in anything printed, whichever option carried it, a refused argument included.

VVV_SECRETS = ("S3cretProxyPw", "S3cretMirrorPw", "S3cretAliasPw", "S3cretExtraPw")
VVV_PROXY = "http://user:S3cretProxyPw@127.0.0.1:3128"


def _vvv_play(tmp_path):
    mirror = "https://u:S3cretMirrorPw@127.0.0.1:9/simple"
    conda = "https://u:S3cretMirrorPw@127.0.0.1:9/anaconda"
    proxy = {"http": VVV_PROXY, "https": VVV_PROXY, "no_proxy": []}
    tasks = [
        {"name": "pip.conf and uv.toml, the proxy in files[].options.proxy",
         "gpulab.provision.mirror_config": {
             "files": [{"client": "pip_conf", "path": str(tmp_path / "pip.conf"), "options": {"proxy": proxy}},
                       {"client": "uv_toml", "path": str(tmp_path / "uv.toml")}],
             "selection": {"status": "ok", "name": "m", "url": mirror, "ranked": [{"name": "m", "url": mirror}]},
             "warn": True}},
        {"name": ".condarc, a credential in the catalog's channel_alias and in options.proxy",
         "gpulab.provision.mirror_config": {
             "client": "condarc", "path": str(tmp_path / ".condarc"), "options": {"proxy": proxy},
             "selection": {"status": "ok", "name": "c", "url": conda, "ranked": [{"name": "c", "url": conda}]},
             "catalog": [{"name": "c", "url": conda, "channel_alias": "https://u:S3cretAliasPw@127.0.0.1:9/cloud"}]}},
        {"name": "daemon.json, a credential in options.extra",
         "gpulab.provision.mirror_config": {
             "client": "daemon_json", "path": str(tmp_path / "daemon.json"), "selection": {"status": "none"},
             "options": {"extra": {"proxies": {"http-proxy": "http://user:S3cretExtraPw@127.0.0.1:3128"}}}}},
        {"name": "a refused argument echoes every argument",
         "gpulab.provision.mirror_config": {
             "client": "pip_conf", "path": str(tmp_path / "pip.conf"), "backup_keep": "many",
             "options": {"proxy": proxy}, "selection": {"status": "ok", "name": "m", "url": mirror}},
         "ignore_errors": True, "register": "refused"},
        {"name": "it was refused", "ansible.builtin.assert": {"that": ["refused is failed"]}},
    ]
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    inventory = tmp_path / "hosts.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"all": {"hosts": {"h1": host}}}))
    return str(play), str(inventory)


def test_no_credential_from_any_option_is_printed_at_vvv(tmp_path):
    play, inventory = _vvv_play(tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible-tmp"), ANSIBLE_DIFF_ALWAYS="1")
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-vvv", "-i", inventory,
                           play], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=180, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert re.search(r"h1\s+: ok=5\s+changed=3 .* ignored=1", out), out[-2000:]
    # the arguments were echoed (so the test looks where the leak was) ...
    assert '"module_args"' in out and "127.0.0.1:3128" in out
    # ... and no secret is printed anywhere
    assert [secret for secret in VVV_SECRETS if secret in out] == []
    # the files hold what they must, readable by root only where they carry a credential
    assert "S3cretProxyPw" in (tmp_path / "pip.conf").read_text() and "S3cretMirrorPw" in (tmp_path / "uv.toml").read_text()
    assert "S3cretAliasPw" in (tmp_path / ".condarc").read_text() and "S3cretExtraPw" in (tmp_path / "daemon.json").read_text()
    assert (tmp_path / "pip.conf").stat().st_mode & 0o777 == 0o640
