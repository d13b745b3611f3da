# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one external command with a deadline that holds even when the command cannot be killed.

Standard library only: this file runs on the managed host inside modules.

Why not ``AnsibleModule.run_command``: it has no timeout, and wrapping the command in coreutils
``timeout`` is not enough for the case that matters. A hung ``nvidia-smi`` (GPU fallen off the bus,
driver stuck in the kernel) sits in uninterruptible sleep: SIGKILL is delivered only when the
kernel call returns, so anything that *waits* for the process (``timeout``, ``subprocess.run``)
hangs with it. Here the command runs in its own session; at the deadline the whole process group
gets SIGKILL, we wait a short grace period for it to go, and if it does not, we stop waiting and
return: the process is left to the kernel, the caller gets ``timed_out=True`` and goes on.
"""

from __future__ import annotations

import os
import signal
import subprocess

# Seconds to wait for the killed process group to go before giving up on it.
KILL_GRACE_S = 2.0


class CommandResult:
    """What one bounded run gave: ``rc`` (None when timed out), ``stdout``, ``stderr``, ``timed_out``."""

    __slots__ = ("argv", "rc", "stdout", "stderr", "timed_out", "timeout")

    def __init__(self, argv, rc, stdout, stderr, timed_out, timeout):
        self.argv = list(argv)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out
        self.timeout = timeout

    def describe_timeout(self):
        """One sentence naming the command and the deadline it missed."""
        return "'%s' did not finish within %s s and was killed" % (" ".join(self.argv), _seconds(self.timeout))


def _seconds(value):
    return ("%g" % value) if isinstance(value, float) else str(value)


def _text(data):
    return (data or b"").decode("utf-8", errors="replace")


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:  # already gone, or not ours any more
        pass


def run_with_deadline(argv, timeout, env=None, kill_grace=KILL_GRACE_S):
    """Run *argv* (a list, no shell), return a :class:`CommandResult` within about
    ``timeout + kill_grace`` seconds whatever the command does.

    *env*: variables added to the current environment. A missing executable raises OSError, as
    ``subprocess`` does.
    """
    if timeout is None or timeout <= 0:
        raise ValueError("timeout must be a positive number of seconds, got %r" % (timeout,))
    full_env = dict(os.environ)
    full_env.update(env or {})
    # Not a with-block: leaving the block would wait for the process, which is what must not happen.
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=full_env, close_fds=True, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return CommandResult(argv, proc.returncode, _text(out), _text(err), False, timeout)
    except subprocess.TimeoutExpired:
        pass
    _kill_group(proc)
    out = err = b""
    try:
        out, err = proc.communicate(timeout=kill_grace)
    except subprocess.TimeoutExpired:
        # Unkillable for now (uninterruptible sleep), or a child outside the group holds the pipes:
        # stop reading, close our ends, leave the process to the kernel.
        for stream in (proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
    return CommandResult(argv, None, _text(out), _text(err), True, timeout)
