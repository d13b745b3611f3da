# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab-gpu-health: how much time is our own work, against what nvidia-smi itself costs.

Measured in one run, each figure the median of --runs:

- ``assess()`` (pure, in process): the recorded H100 report made an 8-GPU node
  (tests/fixtures/gpu-health/h100x8-healthy.xml), a 10,000-line kernel log with Xid lines for
  three of its GPUs, every check; and its parts (reading the XML, scanning the log). Baseline for
  the scan: ``grep 'NVRM: Xid'`` over the same log (what the anchors' shell checks run).
- the whole command: the zipapp built by the role's builder, run as the role runs it
  (``/usr/bin/python3 -I``), with the fake nvidia-smi (tests/fixtures/gpu-health/fake-nvidia-smi)
  serving that XML and ``nvlink -s``, the log as its kernel-log source; beside it the fake
  nvidia-smi's own two calls and ``python3 -I -c pass``.

Our own work = whole run - fake nvidia-smi's two calls. Goal: under 0.5 s.
Usage: bench/gpu_health/run [--runs 7] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if os.path.join(ROOT, "collections") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "collections"))

import yaml  # noqa: E402

from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health import assess, build_config  # noqa: E402
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xid import parse_xids  # noqa: E402
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xml import read_document  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "gpu-health")
FAKE_SMI = os.path.join(FIXTURES, "fake-nvidia-smi")
XML = os.path.join(FIXTURES, "h100x8-healthy.xml")
SYSTEM_PYTHON = "/usr/bin/python3"
GOAL_S = 0.5
LOG_LINES = 10000


def kernel_log():
    """10,000 lines as dmesg prints them: driver and USB noise, and Xids on three of the eight GPUs."""
    lines = []
    buses = ("18", "2a", "3a", "5d", "9a", "ab", "ba", "db")
    for n in range(LOG_LINES):
        stamp = "[%6d.%06d]" % (n, n * 37 % 1000000)
        if n % 1000 == 999:
            code = (13, 31, 94)[n // 1000 % 3]
            lines.append("%s NVRM: Xid (PCI:0000:%s:00): %d, pid=%d, name=python3, Ch 00000010" % (
                stamp, buses[n // 1000 % 3], code, 4000 + n))
        elif n % 7 == 0:
            lines.append("%s NVRM: GPU at PCI:0000:%s:00: GPU-310b45f2-6f17-7b08-158e-2ec04b61f3%d9" % (
                stamp, buses[n % 8], n % 8))
        else:
            lines.append("%s usb 1-%d: new high-speed USB device number %d using xhci_hcd" % (stamp, n % 4, n % 127))
    return "\n".join(lines) + "\n"


def median_time(func, runs):
    times = []
    for _run in range(runs):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(argv, env=None):
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    return done.returncode, done.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "gpu_health.json"))
    args = parser.parse_args(argv)
    with open(os.path.join(ROOT, "roles", "gpu_health", "vars", "main.yml"), "r", encoding="utf-8") as handle:
        policy = yaml.safe_load(handle)["_gpu_health_xid_policy"]
    with open(XML, "r", encoding="utf-8") as handle:
        xml = handle.read()
    work = tempfile.mkdtemp(prefix="gpulab-bench-gpu-health.")
    try:
        return measure(args, policy, xml, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, policy, xml, work):
    log = kernel_log()
    log_path = os.path.join(work, "kern.log")
    with open(log_path, "w", encoding="utf-8") as handle:
        handle.write(log)
    config = build_config({"xid_policy": policy, "expected_count": 8, "nvidia_smi": FAKE_SMI,
                           "kernel_log_sources": [log_path], "command_timeout_s": 10})
    observed = {"smi": {"state": "ok", "xml": xml, "path": FAKE_SMI}, "nvlink": {"state": "ok", "text": ""},
                "kernel_log": {"source": "dmesg", "text": log, "whole_file": False}, "dcgm": None,
                "uptime_s": 20000.0, "now": time.time()}
    health = assess(observed, config)
    assert health["verdict"] == "healthy" and len(health["gpus"]) == 8, health["summary"]
    xids = [c for c in health["checks"] if c["id"] == "xid" and c["gpu"] is not None and c["observed"] != "none"]
    assert len(xids) == 3, xids

    t_assess = median_time(lambda: assess(observed, config), args.runs)
    t_xml = median_time(lambda: read_document(xml), args.runs)
    t_scan = median_time(lambda: parse_xids(log, uptime_s=20000.0), args.runs)
    t_grep = median_time(lambda: run(["grep", "NVRM: Xid", log_path]), args.runs)

    pyz = os.path.join(work, "gpulab-gpu-health.pyz")
    subprocess.run([sys.executable, os.path.join(ROOT, "roles", "mirror_watch", "files", "build_zipapp.py"), ROOT, pyz,
                    "gpu_health_cli", "gpulab-gpu-health"], check=True, stdout=subprocess.PIPE)
    config_path = os.path.join(work, "gpu-health.json")
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    env = {"PATH": "/usr/bin:/bin", "GPULAB_FAKE_SMI_XML": XML}
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    command = [python, "-I", pyz, "--config", config_path, "--json"]
    code, out = run(command, env)
    assert code == 0 and json.loads(out)["verdict"] == "healthy", out[:400]
    t_command = median_time(lambda: run(command, env), args.runs)
    t_smi = median_time(lambda: (run([FAKE_SMI, "-q", "-x"], env), run([FAKE_SMI, "nvlink", "-s"], env)), args.runs)
    t_python = median_time(lambda: run([python, "-I", "-c", "pass"], env), args.runs)
    own = t_command - t_smi

    rows = [
        ("python3 -I start-up (baseline)", t_python, ""),
        ("fake nvidia-smi: -q -x + nvlink -s (baseline)", t_smi, ""),
        ("grep 'NVRM: Xid' over the log (baseline)", t_grep, ""),
        ("read the 8-GPU XML", t_xml, ""),
        ("scan the 10,000-line log for Xids", t_scan, "%.2fx grep" % (t_scan / t_grep)),
        ("assess(): 8 GPUs + 10,000-line log, every check", t_assess, "%.2f of the goal" % (t_assess / GOAL_S)),
        ("gpulab-gpu-health --json, whole run", t_command, "%.2fx nvidia-smi's own time" % (t_command / t_smi)),
        ("  our own work (whole run - nvidia-smi)", own,
         "%.2f of the goal: %s" % (own / GOAL_S, "PASS" if own < GOAL_S else "FAIL")),
    ]
    print("== result (%s, %d cores, load %.2f, python %s, median of %d)" % (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.cpu_count(), os.getloadavg()[0], python, args.runs))
    for label, seconds, note in rows:
        print("%-50s: %7.3f s  %s" % (label, seconds, note))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump({label.strip(): round(seconds, 4) for label, seconds, _note in rows}, handle, indent=2)
    return 0 if own < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
