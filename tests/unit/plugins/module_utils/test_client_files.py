# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""client_files: how failover.yml's one call and the watcher write the client files."""
from __future__ import annotations

import errno
import os
import signal
import socket
import time

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import client_files
from ansible_collections.gpulab.provision.plugins.module_utils.backups import PruneError, backup_pattern, prune
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import RenderError

SEL = {"status": "ok", "name": "b", "url": "https://b.example/simple",
       "ranked": [{"name": "b", "url": "https://b.example/simple"}]}


def test_backup_name_is_the_one_ansible_gives_and_prune_knows():
    name = client_files.backup_name("/etc/pip.conf", pid=42, when=0)
    assert backup_pattern("pip.conf").match(os.path.basename(name))


def test_write_file_replaces_atomically_with_mode_and_backup(tmp_path):
    path = tmp_path / "pip.conf"
    path.write_text("old\n")
    saved = client_files.write_file(str(path), "new\n", 0o640, "root", backup=True)
    assert path.read_text() == "new\n" and path.stat().st_mode & 0o777 == 0o640
    with open(saved, encoding="utf-8") as handle:
        assert handle.read() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".gpulab.")) == []


def test_a_rejected_file_is_never_put_in_place(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("{}\n")
    with pytest.raises(RenderError, match="rejected .unknown key.; the old one is kept"):
        client_files.write_file(str(path), '{"bad": 1}\n', validate=lambda tmp: "unknown key", backup=True)
    assert path.read_text() == "{}\n" and [p.name for p in tmp_path.iterdir()] == ["daemon.json"]


def test_an_unknown_credentials_group_is_named(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root sets a group")
    with pytest.raises(RenderError, match="group 'no-such-group-x' does not exist"):
        client_files.write_file(str(tmp_path / "f"), "x", 0o640, "no-such-group-x")
    assert not (tmp_path / "f").exists()


def test_prune_keeps_the_newest(tmp_path):
    path = tmp_path / "pip.conf"
    path.write_text("x")
    for index, stamp in enumerate(("2026-01-01@00:00:00", "2026-03-01@00:00:00", "2026-02-01@00:00:00")):
        (tmp_path / ("pip.conf.1.%s~" % stamp)).write_text(stamp)
        # each file's own time agrees with its name here (the order is the mtime's: test_backups.py)
        os.utime(tmp_path / ("pip.conf.1.%s~" % stamp), (1e9 + (0, 2, 1)[index],) * 2)
    (tmp_path / "pip.conf.notes").write_text("not a backup")
    kept, removed = prune(str(path), 1)
    assert kept == ["pip.conf.1.2026-03-01@00:00:00~"]
    assert sorted(removed) == ["pip.conf.1.2026-01-01@00:00:00~", "pip.conf.1.2026-02-01@00:00:00~"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pip.conf", "pip.conf.1.2026-03-01@00:00:00~", "pip.conf.notes"]


@pytest.mark.parametrize("client,path,dirs,expected", [
    ("pip_conf", "/etc/pip.conf", set(), True),
    ("condarc", "/opt/conda/.condarc", set(), False),
    ("condarc", "/opt/conda/.condarc", {"/opt/conda"}, True),
    ("hosts_toml", "/etc/containerd/certs.d/docker.io/hosts.toml", set(), False),
    ("hosts_toml", "/etc/containerd/certs.d/docker.io/hosts.toml", {"/etc/containerd"}, True),
])
def test_what_a_role_would_create(client, path, dirs, expected):
    assert client_files.would_create(client, path, dirs.__contains__) is expected


def test_plan_files_creates_only_with_a_healthy_choice_and_when_asked(tmp_path):
    entry = {"client": "pip_conf", "path": str(tmp_path / "pip.conf"), "options": {}}
    plan, = client_files.plan_files([entry], SEL, [], create=True)
    assert plan["missing"] and plan["result"]["changed"]
    plan, = client_files.plan_files([entry], SEL, [], create=False)
    assert plan["result"] is None and plan["error"] is None
    # kept / none: rendered too (the summary is whole), and the missing file stays missing
    plan, = client_files.plan_files([entry], {"status": "kept", "name": "a"}, [], create=True)
    assert plan["result"]["changed"] is False and plan["result"]["content"] == ""
    assert plan["result"]["summary"]["present"] is False and plan["result"]["summary"]["action"] == "untouched"


def test_apply_plans_in_check_mode_writes_nothing(tmp_path):
    entry = {"client": "pip_conf", "path": str(tmp_path / "sub" / "pip.conf"), "options": {}}
    plans = client_files.plan_files([entry], SEL, [], create=True)
    done = client_files.apply_plans(plans, check=True, diff=True)
    assert done["written"] == [entry["path"]] and not (tmp_path / "sub").exists()
    assert "index-url = https://b.example/simple" in done["diffs"][0]["after"]
    done = client_files.apply_plans(plans)
    assert (tmp_path / "sub" / "pip.conf").stat().st_mode & 0o777 == 0o644
    assert done["backups"] == []  # nothing to back up: the file was new


# A FIFO (device, socket, directory) at a client file's path is refused before it is
# opened, naming the path; the watcher and failover.yml's one call used to block on it for ever.

def _special(tmp_path, kind):
    path = tmp_path / "pip.conf"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    elif kind == "symlink to a device":
        path.symlink_to("/dev/null")
    return path


@pytest.fixture
def no_hang():
    """Fail (SIGALRM) instead of blocking the suite for ever when a FIFO is opened."""
    def hung(*_args):
        raise AssertionError("blocked on the path for 10 s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["fifo", "directory", "socket", "symlink to a device"])
def test_anything_but_a_regular_file_is_refused_naming_it(tmp_path, kind, no_hang):
    path = _special(tmp_path, kind)
    with pytest.raises(client_files.NotAFileError, match="%s is a .*not a regular file" % path):
        client_files.read_text(str(path))
    with pytest.raises(client_files.NotAFileError, match=str(path)):
        client_files.write_file(str(path), "[global]\n", backup=True)
    entry = {"client": "pip_conf", "path": str(path), "options": {}}
    plan, = client_files.plan_files([entry], SEL, [], create=True)
    assert plan["result"] is None and str(path) in plan["error"] and "not a regular file" in plan["error"]
    done = client_files.apply_plans([plan])
    assert done["written"] == [] and done["errors"][0]["path"] == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pip.conf"]


def test_a_symlink_to_a_regular_file_is_read(tmp_path):
    (tmp_path / "real.conf").write_text("[global]\n")
    (tmp_path / "pip.conf").symlink_to(tmp_path / "real.conf")
    assert client_files.read_text(str(tmp_path / "pip.conf")) == "[global]\n"
    assert client_files.read_text(str(tmp_path / "missing.conf")) is None


# Backups.

def _names(path, pid, seconds=4):
    now = time.time()
    return [client_files.backup_name(str(path), pid, now + delta) for delta in range(seconds)]


def test_a_symlink_planted_at_the_backup_name_is_never_followed(tmp_path):
    path, victim = tmp_path / "pip.conf", tmp_path / "victim"
    path.write_text("old\n")
    victim.write_text("precious\n")
    planted = _names(path, os.getpid())
    for name in planted:
        os.symlink(victim, name)
    saved = client_files.write_file(str(path), "new\n", backup=True)
    assert victim.read_text() == "precious\n" and path.read_text() == "new\n"
    assert all(os.path.islink(name) for name in planted) and saved not in planted
    assert backup_pattern("pip.conf").match(os.path.basename(saved))
    assert open(saved).read() == "old\n" and not os.path.islink(saved)


def test_a_backup_keeps_the_files_mode_and_a_partial_one_never_stays(tmp_path, monkeypatch):
    path = tmp_path / "pip.conf"
    path.write_text("old\n")
    path.chmod(0o640)
    saved = client_files.write_file(str(path), "new\n", 0o640, backup=True)
    assert os.stat(saved).st_mode & 0o777 == 0o640
    # a copy that fails half way (what a full disk does: the molecule-free real case is in
    # test_mirror_config.py on a small tmpfs): no backup, no temporary file, the old file stays
    real_read = os.read

    def failing_read(fd, size):
        if os.fstat(fd).st_ino == path.stat().st_ino:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_read(fd, size)
    monkeypatch.setattr(client_files.os, "read", failing_read)
    with pytest.raises(OSError, match="no backup could be made .*the old file is kept"):
        client_files.write_file(str(path), "newer\n", 0o640, backup=True)
    monkeypatch.undo()
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["pip.conf", os.path.basename(saved)])


def test_prune_orders_by_the_files_time_and_skips_what_is_not_a_backup_file(tmp_path):
    path = tmp_path / "pip.conf"
    path.write_text("x")
    real = []
    for index in range(3):
        name = tmp_path / ("pip.conf.1%d.2026-01-0%d@00:00:00~" % (index, index + 1))
        name.write_text("real %d" % index)
        os.utime(name, (1.7e9 + index,) * 2)
        real.append(name.name)
    # named with a future date, but older: must not make the real newest go
    future = tmp_path / "pip.conf.99.2099-12-31@23:59:59~"
    future.write_text("old")
    os.utime(future, (1.6e9,) * 2)
    # named like backups, but not backup files: never counted, never removed, never an error
    (tmp_path / "pip.conf.7.2099-01-01@00:00:00~").mkdir()
    os.symlink(path, tmp_path / "pip.conf.8.2099-01-01@00:00:00~")
    os.mkfifo(tmp_path / "pip.conf.9.2099-01-01@00:00:00~")
    kept, removed = prune(str(path), 2)
    assert kept == [real[2], real[1]] and sorted(removed) == sorted([real[0], future.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["pip.conf", real[1], real[2], "pip.conf.7.2099-01-01@00:00:00~", "pip.conf.8.2099-01-01@00:00:00~",
         "pip.conf.9.2099-01-01@00:00:00~"])


def test_a_write_whose_pruning_fails_is_still_a_write(tmp_path, monkeypatch):
    path = tmp_path / "pip.conf"
    path.write_text("[global]\n")

    def fails(_path, _keep):
        raise PruneError("cannot remove %s.1.2026-01-01@00:00:00~ (Permission denied)" % path, [], ["x"])
    monkeypatch.setattr(client_files, "prune", fails)
    entry = {"client": "pip_conf", "path": str(path), "options": {}, "backup": True, "backup_keep": 1}
    done = client_files.apply_plans(client_files.plan_files([entry], SEL, [], create=True))
    assert done["written"] == [str(path)] and done["errors"] == [] and len(done["backups"]) == 1
    assert "was written, but its old backups were not all pruned" in done["warnings"][0]
    assert "index-url = https://b.example/simple" in path.read_text()


def test_a_backup_of_another_users_file_is_ours_so_pruning_counts_it(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    path = tmp_path / "pip.conf"
    path.write_text("old\n")
    os.chown(path, 1, 1)
    saved = client_files.write_file(str(path), "new\n", backup=True)
    assert os.stat(saved).st_uid == 0 and open(saved).read() == "old\n"
    assert prune(str(path), 0) == ([], [os.path.basename(saved)]) and not os.path.exists(saved)
