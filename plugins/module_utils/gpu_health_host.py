# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the host says about its GPUs: the commands and files ``gpu_health.assess`` reads.

Standard library only: this file runs on the managed host (module and ``gpulab-gpu-health``).

Every command runs under ``command_deadline.run_with_deadline`` (a hung ``nvidia-smi`` on a GPU
that fell off the bus cannot hold the run), with ``LC_ALL=C``. The kernel log comes from the first
source that can be read, in the configured order: the journal (``journalctl -k -b 0``), a file such
as ``/var/log/kern.log`` (only its current boot is read), ``dmesg`` (denied in many containers).
"""

from __future__ import annotations

import os
import shutil
import time

from ansible_collections.gpulab.provision.plugins.module_utils.command_deadline import run_with_deadline
from ansible_collections.gpulab.provision.plugins.module_utils.nvidia_smi import classify_failure, output_text

# Searched after PATH: where drivers put nvidia-smi when PATH is minimal (Slurm's health check,
# cron) or the driver sits on a mount (the recorded H100 host: /usr/local/nvidia/bin).
FALLBACK_DIRS = ("/usr/bin", "/usr/local/bin", "/usr/local/nvidia/bin", "/opt/nvidia/bin")
PROC_UPTIME = "/proc/uptime"
# The kernel's random id of this boot (a new one at each boot): the metrics' Xid counts are kept per boot.
PROC_BOOT_ID = "/proc/sys/kernel/random/boot_id"
PROC_STAT = "/proc/stat"
# A kernel log file is read from its last MAX_LOG_BYTES (a kern.log that was never rotated must not
# cost the health check its seconds); a boot's Xids are near its end.
MAX_LOG_BYTES = 32 * 1024 * 1024
_ENV = {"LC_ALL": "C"}


def find_command(name, search_path=None):
    """The absolute path of *name*: itself when absolute, else the first on PATH, then FALLBACK_DIRS."""
    if name.startswith("/"):
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    path = search_path if search_path is not None else os.environ.get("PATH", "")
    dirs = [part for part in path.split(os.pathsep) if part] + [d for d in FALLBACK_DIRS if d not in path.split(":")]
    return shutil.which(name, path=os.pathsep.join(dirs))


def _run(argv, timeout):
    """``(state, rc, text)``: state ok | timed_out | failed (could not start)."""
    try:
        result = run_with_deadline(argv, timeout, env=_ENV)
    except OSError as exc:
        return "failed", None, "could not run %s: %s" % (argv[0], exc)
    if result.timed_out:
        return "timed_out", None, result.describe_timeout()
    return "ok", result.rc, result.stdout if result.rc == 0 else output_text(result.stdout, result.stderr)


def observe_smi(config):
    """The ``nvidia-smi -q -x`` observation: ``{state, message, path, xml}``; state as nvidia_smi's
    STATES (ok, absent, no_devices, version_mismatch, nvml_error, timed_out)."""
    smi = find_command(config["nvidia_smi"])
    if smi is None:
        message = "%s not found (PATH, then %s)" % (config["nvidia_smi"], ", ".join(FALLBACK_DIRS))
        return {"state": "absent", "message": message, "path": None, "xml": None}
    state, rc, text = _run([smi, "-q", "-x"], config["command_timeout_s"])
    if state == "timed_out":
        return {"state": "timed_out", "message": text, "path": smi, "xml": None}
    if state == "failed":
        return {"state": "absent", "message": text, "path": smi, "xml": None}
    failure = classify_failure(text) if rc != 0 or "<nvidia_smi_log" not in text else None
    if failure:
        return {"state": failure[0], "message": failure[1], "path": smi, "xml": None}
    if rc != 0:
        return {"state": "nvml_error", "message": text.strip() or "%s -q -x exited %s" % (smi, rc), "path": smi,
                "xml": None}
    return {"state": "ok", "message": None, "path": smi, "xml": text}


def observe_nvlink(smi_path, timeout):
    """``{state, text}`` of ``nvidia-smi nvlink -s`` (state ok only when it exited 0)."""
    state, rc, text = _run([smi_path, "nvlink", "-s"], timeout)
    if state == "ok" and rc != 0:
        state = "failed"
    return {"state": state, "text": text}


def observe_kernel_log(sources, timeout):
    """``{source, text, whole_file, tried}``: the first readable source; text None when none was."""
    tried = []
    for source in sources:
        if source == "journal":
            journalctl = find_command("journalctl")
            if journalctl is None:
                tried.append("journal: journalctl not installed")
                continue
            state, rc, text = _run([journalctl, "-k", "-b", "0", "-o", "short-monotonic", "--no-pager", "-q"], timeout)
            if state != "ok" or rc != 0:
                tried.append("journal: %s" % (text.strip().splitlines() or [state])[0][:160])
                continue
            if not text.strip() or text.strip() == "-- No entries --":
                tried.append("journal: no kernel messages in this boot's journal")
                continue
            return {"source": "journal", "text": text, "whole_file": False, "tried": tried}
        if source == "dmesg":
            dmesg = find_command("dmesg")
            if dmesg is None:
                tried.append("dmesg: not installed")
                continue
            state, rc, text = _run([dmesg], timeout)
            if state != "ok" or rc != 0 or not text.strip():
                tried.append("dmesg: %s" % ((text.strip().splitlines() or [state])[0][:160] or "no output"))
                continue
            return {"source": "dmesg", "text": text, "whole_file": False, "tried": tried}
        try:
            with open(source, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - MAX_LOG_BYTES))
                text = handle.read().decode("utf-8", errors="replace")
        except (IOError, OSError) as exc:
            tried.append("%s: %s" % (source, exc.strerror or exc))
            continue
        if not text.strip():
            tried.append("%s: empty" % source)
            continue
        return {"source": source, "text": text, "whole_file": True, "tried": tried}
    return {"source": None, "text": None, "whole_file": False, "tried": tried}


def observe_dcgm(level, timeout):
    """None where dcgmi is not installed or the level is 0; else ``{state, rc, text}`` of ``dcgmi diag -r L -j``."""
    if level < 1:
        return None
    dcgmi = find_command("dcgmi")
    if dcgmi is None:
        return None
    state, rc, text = _run([dcgmi, "diag", "-r", str(level), "-j"], timeout)
    return {"state": state, "rc": rc, "text": text}


def read_uptime(path=PROC_UPTIME):
    try:
        with open(path, "r", encoding="ascii") as handle:
            return float(handle.read().split()[0])
    except (IOError, OSError, ValueError, IndexError):
        return None


def read_boot_id(path=PROC_BOOT_ID, stat_path=PROC_STAT):
    """This boot's id: the kernel's boot_id, else ``btime:<boot time>`` from /proc/stat, else None."""
    try:
        with open(path, "r", encoding="ascii") as handle:
            value = handle.read().strip()
        if value:
            return value
    except (IOError, OSError, ValueError):
        pass
    try:
        with open(stat_path, "r", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("btime "):
                    return "btime:%s" % line.split()[1]
    except (IOError, OSError, ValueError, IndexError):
        pass
    return None


def observe(config):
    """Everything :func:`gpu_health.assess` reads, gathered on this host."""
    started = time.time()
    disabled = set(config["disabled_checks"])
    timeout = config["command_timeout_s"]
    smi = observe_smi(config)
    nvlink = None
    if smi["state"] == "ok" and "nvlink" not in disabled:
        nvlink = observe_nvlink(smi["path"], timeout)
    kernel_log = {"source": None, "text": "", "whole_file": False, "tried": ["disabled"]}
    if "xid" not in disabled:
        kernel_log = observe_kernel_log(config["kernel_log_sources"], timeout)
    dcgm = None
    if "dcgm_diag" not in disabled:
        thresholds = config["thresholds"]
        dcgm = observe_dcgm(thresholds["dcgm_diag_level"], thresholds["dcgm_diag_timeout_s"])
    return {"smi": smi, "nvlink": nvlink, "kernel_log": kernel_log, "dcgm": dcgm, "uptime_s": read_uptime(),
            "boot_id": read_boot_id(), "now": time.time(), "started": started}
