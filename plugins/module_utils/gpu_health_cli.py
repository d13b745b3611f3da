# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``gpulab-gpu-health``: the node health check as a command (built into a zipapp by the gpu_health role).

Standard library only: the host needs python3 and nothing else.

    gpulab-gpu-health [--config PATH] [--json] [--all] [--slurm] [--node NAME] [--metrics-dir DIR]

Exit status: 0 healthy, 1 degraded, 2 could not assess (unknown, or a bad configuration).
With ``--metrics-dir`` (the role's wrapper passes ``gpulab_metrics_dir``) each run also writes
``DIR/gpulab_gpu_health.prom`` for node_exporter's textfile collector (``gpu_health_metrics``);
a metrics problem is a warning on stderr naming gpulab_metrics_dir and changes neither the
verdict, the exit status nor the Slurm action.
Fits Slurm's ``HealthCheckProgram`` and a prolog (a few seconds: one ``nvidia-smi -q -x``, one
``nvlink -s``, the kernel log; every command under a deadline). With ``--slurm`` it acts on the
node: degraded -> ``scontrol update nodename=N state=drain reason="gpulab: <summary>"``; healthy ->
``state=resume``, only when the node is drained with a reason that starts with ``gpulab:`` (a drain
by anyone else is never undone); unknown -> nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time

from ansible_collections.gpulab.provision.plugins.module_utils.command_deadline import run_with_deadline
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health import (
    EXIT_CODES,
    GpuHealthConfigError,
    assess,
    build_config,
    table,
)
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_host import find_command, observe, read_boot_id
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_metrics import write_or_warn

DEFAULT_CONFIG = "/etc/gpulab/gpu-health.json"
REASON_PREFIX = "gpulab:"
REASON_MAX = 200  # Slurm keeps the reason whole, but scontrol show and sinfo -R read better short
_STATE = re.compile(r"\bState=(\S+)")
_REASON = re.compile(r"\bReason=(.*?)(?:\s+\[[^\]]*@[^\]]*\])?\s*$", re.MULTILINE)


def drain_reason(summary):
    reason = "%s %s" % (REASON_PREFIX, summary)
    return reason if len(reason) <= REASON_MAX else reason[:REASON_MAX - 3] + "..."


def node_state(show_text):
    """``(state, reason)`` from ``scontrol show node N``; reason None when there is none."""
    state = _STATE.search(show_text or "")
    reason = _REASON.search(show_text or "")
    value = reason.group(1).strip() if reason else None
    return (state.group(1) if state else None), (value if value and value != "(null)" else None)


def slurm_plan(verdict, summary, state, reason):
    """What to do with the node: ``("drain", reason)``, ``("resume", None)`` or ``(None, why)``."""
    drained = state is not None and "DRAIN" in state.upper()
    ours = reason is not None and reason.startswith(REASON_PREFIX)
    if verdict == "degraded":
        wanted = drain_reason(summary)
        if drained and not ours:
            return None, "already drained by someone else (%s): left as it is" % reason
        if drained and reason == wanted:
            return None, "already drained with this reason"
        return "drain", wanted
    if verdict == "healthy":
        if drained and ours:
            return "resume", None
        return None, "nothing to undo" if not drained else "drained by someone else (%s): not resumed" % reason
    return None, "could not assess the node: Slurm state left as it is"


def _scontrol(scontrol, args, timeout):
    result = run_with_deadline([scontrol] + args, timeout, env={"LC_ALL": "C"})
    if result.timed_out:
        return None, result.describe_timeout()
    return result.rc, (result.stdout + result.stderr).strip()


def act_on_slurm(health, config, node, out):
    """Drain or resume *node* per :func:`slurm_plan`; returns a non-empty error text when scontrol failed."""
    scontrol = find_command(config["slurm_scontrol"])
    if scontrol is None:
        return "%s not found" % config["slurm_scontrol"]
    timeout = config["command_timeout_s"]
    rc, shown = _scontrol(scontrol, ["show", "node", node], timeout)
    if rc != 0:
        return "scontrol show node %s: %s" % (node, shown)
    state, reason = node_state(shown)
    action, detail = slurm_plan(health["verdict"], health["summary"], state, reason)
    if action == "drain":
        rc, said = _scontrol(scontrol, ["update", "nodename=%s" % node, "state=drain", "reason=%s" % detail], timeout)
    elif action == "resume":
        rc, said = _scontrol(scontrol, ["update", "nodename=%s" % node, "state=resume"], timeout)
    else:
        out.write("slurm: %s: %s\n" % (node, detail))
        return ""
    if rc != 0:
        return "scontrol update nodename=%s state=%s: %s" % (node, action, said)
    out.write("slurm: %s: %s%s\n" % (node, action, "" if action == "resume" else " (%s)" % detail))
    return ""


def node_name(given, environ):
    """--node, else $SLURMD_NODENAME, else the short host name (``hostname -s``)."""
    return given or environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


def load_config(path):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            settings = json.load(handle)
    except FileNotFoundError:
        if path != DEFAULT_CONFIG:
            raise
        settings = {}  # the documented defaults
    if not isinstance(settings, dict):
        raise GpuHealthConfigError(["%s must hold a JSON object" % path])
    return build_config(settings)


def write_metrics(directory, health, observed, err):
    """The .prom file when a directory is given; a problem is one warning line on *err*, nothing more."""
    _result, warning = write_or_warn(directory, health, observed)
    if warning:
        err.write("gpulab-gpu-health: warning: %s\n" % warning)


def main(argv=None, environ=None, out=None, err=None):
    environ = os.environ if environ is None else environ
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = argparse.ArgumentParser(prog="gpulab-gpu-health", description="Is this GPU node healthy? "
                                     "Exit 0 healthy, 1 degraded, 2 could not assess.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="settings (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the assessment as JSON")
    parser.add_argument("--all", action="store_true", help="list passed checks in the table too")
    parser.add_argument("--slurm", action="store_true", help="drain the node when degraded, resume it when healthy "
                        "and drained by this command")
    parser.add_argument("--node", help="Slurm node name (default $SLURMD_NODENAME, else hostname -s)")
    parser.add_argument("--metrics-dir", default="", help="write gpulab_gpu_health.prom there for node_exporter's "
                        "textfile collector (default: none, no metrics)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as exc:
        err.write("gpulab-gpu-health: bad configuration %s: %s\n" % (args.config, exc))
        # The metrics say so too (verdict unknown, this boot's Xid counts kept), rather than go stale.
        write_metrics(args.metrics_dir, {"verdict": "unknown", "gpus": [], "checks": []},
                      {"boot_id": read_boot_id(), "now": time.time()}, err)
        return EXIT_CODES["unknown"]
    observed = observe(config)
    health = assess(observed, config)
    write_metrics(args.metrics_dir, health, observed, err)
    if args.json:
        out.write(json.dumps(health, indent=2, sort_keys=True) + "\n")
    else:
        out.write(table(health, show_all=args.all))
    if args.slurm:
        problem = act_on_slurm(health, config, node_name(args.node, environ), err if args.json else out)
        if problem:
            err.write("gpulab-gpu-health: slurm: %s\n" % problem)
    return EXIT_CODES[health["verdict"]]
