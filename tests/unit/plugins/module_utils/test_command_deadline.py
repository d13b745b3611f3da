# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""run_with_deadline: a command that hangs cannot hold the caller past its deadline."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.command_deadline import run_with_deadline


def script(tmp_path, body, name="cmd"):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    os.chmod(str(path), 0o755)
    return str(path)


def test_a_command_that_finishes_gives_rc_and_both_streams(tmp_path):
    cmd = script(tmp_path, 'echo "out $LC_ALL"; echo err >&2; exit 3')
    result = run_with_deadline([cmd], 10, env={"LC_ALL": "C"})
    assert (result.rc, result.stdout, result.stderr, result.timed_out) == (3, "out C\n", "err\n", False)


def test_a_hanging_command_is_killed_at_the_deadline(tmp_path):
    cmd = script(tmp_path, "echo started; exec sleep 60")
    start = time.monotonic()
    result = run_with_deadline([cmd, "-q"], 0.5)
    elapsed = time.monotonic() - start
    assert result.timed_out is True
    assert result.rc is None
    assert result.stdout == "started\n"  # what it printed before hanging is kept
    assert elapsed < 5
    assert result.describe_timeout() == "'%s -q' did not finish within 0.5 s and was killed" % cmd


def test_the_whole_process_group_is_killed(tmp_path):
    pidfile = tmp_path / "child.pid"
    cmd = script(tmp_path, "sleep 60 & echo $! > %s; wait" % pidfile)
    result = run_with_deadline([cmd], 0.5)
    assert result.timed_out
    child = int(pidfile.read_text())
    for _attempt in range(50):  # the grandchild got SIGKILL too; give the kernel a moment to reap it
        try:
            os.kill(child, 0)
        except OSError:
            break
        with open("/proc/%d/stat" % child) as handle:
            if handle.read().split()[2] == "Z":
                break
        time.sleep(0.1)
    else:
        pytest.fail("the background child of the timed-out command is still running")


def test_a_process_that_keeps_the_pipes_open_does_not_hold_the_caller(tmp_path):
    # A descendant in another session escapes the process-group kill and keeps stdout open: the
    # stand-in for a process stuck in the kernel that SIGKILL cannot end. The caller still returns.
    pidfile = tmp_path / "escaped.pid"
    cmd = script(tmp_path, "setsid sleep 30 & echo $! > %s; exec sleep 60" % pidfile)
    start = time.monotonic()
    result = run_with_deadline([cmd], 0.5, kill_grace=0.5)
    elapsed = time.monotonic() - start
    try:
        assert result.timed_out
        assert elapsed < 5
    finally:
        try:
            os.kill(int(pidfile.read_text()), 9)
        except (OSError, ValueError):
            pass


def test_a_missing_executable_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        run_with_deadline([str(tmp_path / "missing")], 1)


@pytest.mark.parametrize("timeout", [0, -1, None])
def test_timeout_must_be_positive(timeout):
    with pytest.raises(ValueError, match="positive"):
        run_with_deadline(["true"], timeout)
