# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``gpu_health`` metrics (``gpulab_gpu_health.prom``) from an assessment and the kernel log.

Standard library only: this file runs on the managed host (module ``gpulab.provision.gpu_health``
and the ``gpulab-gpu-health`` command). The text is rendered and written by ``metrics`` (the
collection's one metrics writer); this file only builds the families:

* ``gpulab_gpu_health_verdict``: 0 healthy, 1 degraded, 2 unknown (``gpu_health.VERDICTS``);
* ``gpulab_gpu_health_last_run_timestamp_seconds``: when the assessment ran;
* ``gpulab_gpu_check_status{gpu,uuid,check}``: each check the assessment ran, 0 ok (``pass``),
  1 warning (``warn``), 2 critical, 3 unknown (the check could not run). ``gpu`` is the GPU index and
  ``uuid`` its UUID; both are empty for a node-level check (``nvidia_smi``, ``gpu_count``,
  ``driver_version``, ``dcgm_diag`` and the ``xid`` check of devices nvidia-smi does not list).
  A disabled check has no series;
* ``gpulab_gpu_xid_events_total{gpu,xid}``: every Xid event of the **current boot** in the kernel
  log, per GPU and Xid code (repeats counted, not only the last or the distinct ones; the Xid
  policy's window ``xid_window_s`` does not apply here, it only shapes the verdict). ``gpu`` is the
  GPU index, or the PCI address (``0000:1b:00``) of a device whose index was never known in this
  boot (a GPU that fell off the bus before nvidia-smi listed it).

The Xid counter is derived from the kernel log of this boot, so it starts again at 0 after a reboot;
Prometheus' ``rate()`` and ``increase()`` read that as a counter reset. Within one boot it never goes
down: the counts are kept in the concern's state (``metrics.update_state``: ``.gpulab-gpu_health.json``
under an flock) keyed by the boot id (``/proc/sys/kernel/random/boot_id``), and each run keeps, per
series, the larger of the saved count and the count in the log it read. A log that shows only a
window of the boot (dmesg's ring buffer once it wrapped, the tail of a large kern.log) therefore
cannot lower a count; events that scrolled out of such a window before any run read them are not
counted. ``journalctl -k -b 0``, the default first source, shows the whole boot. When the kernel
log cannot be read at all, the saved counts of this boot are written again (unknown is not zero).
The index of each PCI address is remembered for the boot too, so an Xid series keeps its ``gpu``
label when the GPU later drops out of nvidia-smi's list.
"""

from __future__ import annotations

import time

from ansible_collections.gpulab.provision.plugins.module_utils import metrics
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xid import SEVERITY_RANK, parse_xids
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xml import pci_key

CONCERN = "gpu_health"
VERDICT_VALUES = {"healthy": 0, "degraded": 1, "unknown": 2}
# gpu_health's severities (gpu_health.SEVERITIES) -> the status values of gpulab_gpu_check_status.
CHECK_STATUS = {"pass": 0, "warn": 1, "critical": 2, "unknown": 3}


def pci_text(key):
    """``(domain, bus, device)`` (``gpu_health_xml.pci_key``) -> ``0000:1b:00``, the kernel's form."""
    return "%04x:%02x:%02x" % tuple(key)


def gpu_indexes(health):
    """``{pci text: index text}`` of the GPUs the assessment lists (nvidia-smi's bus ids)."""
    found = {}
    for gpu in health.get("gpus") or []:
        key = pci_key(gpu.get("bus_id"))
        if key is not None and gpu.get("index") is not None:
            found[pci_text(key)] = str(gpu["index"])
    return found


def xid_counts(observed):
    """``{(pci text, code text): events}`` in this boot's kernel log; None when no log was read.

    Every event counts (the same Xid logged five times is 5). *observed* is what
    ``gpu_health_host.observe`` returned (``kernel_log``, ``uptime_s``, ``now``).
    """
    log = observed.get("kernel_log") or {}
    if log.get("text") is None:
        return None
    counts = {}
    events = parse_xids(log["text"], None, observed.get("uptime_s"), observed.get("now"),
                        whole_file=log.get("whole_file", False))
    for event in events:
        key = event.get("key")
        pci = pci_text(key) if key is not None else event["pci"]
        series = (pci, str(event["code"]))
        counts[series] = counts.get(series, 0) + 1
    return counts


def merge_state(saved, boot_id, counts, indexes):
    """The concern's new state from the saved one and this run's reading.

    ``{boot_id, xid: {series_key(pci, xid): count}, gpu_index: {pci: index}}``. The same boot: per
    series the larger of the saved and the read count, the indexes merged (this run's win). Another
    boot, or no saved state: this run's reading alone. An unknown boot id keeps nothing across runs
    (no way to tell a reboot), so the counts are the log's as read. *counts* None (no kernel log):
    the saved counts of this boot are kept as they are.
    """
    same_boot = boot_id is not None and isinstance(saved, dict) and saved.get("boot_id") == boot_id
    xid, index = {}, {}
    if same_boot:
        xid = {key: int(value) for key, value in (saved.get("xid") or {}).items()
               if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0}
        index = {str(key): str(value) for key, value in (saved.get("gpu_index") or {}).items()}
    for (pci, code), count in sorted((counts or {}).items()):
        key = metrics.series_key({"pci": pci, "xid": code})
        xid[key] = max(xid.get(key, 0), count)
    index.update(indexes)
    return {"boot_id": boot_id, "xid": xid, "gpu_index": index}


def check_samples(health):
    """``(labels, status)`` for every check of the assessment; one series per (gpu, uuid, check), the
    worst severity when a check id appears twice for the same GPU."""
    worst = {}
    for check in health.get("checks") or []:
        severity = check.get("severity")
        if severity not in CHECK_STATUS:
            severity = "unknown"
        labels = (("check", str(check.get("id"))), ("gpu", "" if check.get("gpu") is None else str(check["gpu"])),
                  ("uuid", check.get("uuid") or ""))
        if labels not in worst or SEVERITY_RANK[severity] > SEVERITY_RANK[worst[labels]]:
            worst[labels] = severity
    return [(dict(labels), CHECK_STATUS[severity]) for labels, severity in sorted(worst.items())]


def xid_samples(state):
    """``(labels {gpu, xid}, count)`` from the state; the gpu label is the index where known."""
    totals = {}
    for key, count in (state.get("xid") or {}).items():
        labels = metrics.key_labels(key)
        if not labels or "pci" not in labels or "xid" not in labels:
            continue
        gpu = (state.get("gpu_index") or {}).get(labels["pci"], labels["pci"])
        series = (gpu, labels["xid"])
        totals[series] = totals.get(series, 0) + count
    return [({"gpu": gpu, "xid": code}, count) for (gpu, code), count in sorted(totals.items())]


def families(health, state, now):
    """The families of the ``gpu_health`` concern."""
    return [
        metrics.family("gpulab_gpu_health_verdict", "gauge",
                       "GPU node health verdict of the last gpulab-gpu-health run: 0 healthy, 1 degraded, 2 unknown.",
                       [({}, VERDICT_VALUES.get(health.get("verdict"), 2))]),
        metrics.family("gpulab_gpu_health_last_run_timestamp_seconds", "gauge",
                       "When the last GPU health assessment ran, in seconds since the epoch.", [({}, now)]),
        metrics.family("gpulab_gpu_check_status", "gauge",
                       "Result of each GPU health check: 0 ok, 1 warning, 2 critical, 3 unknown (could not run); "
                       "gpu and uuid are empty for node-level checks.", check_samples(health)),
        metrics.family("gpulab_gpu_xid_events_total", "counter",
                       "Xid events in the kernel log of the current boot, per GPU index (PCI address when the "
                       "index is unknown) and Xid code; starts again at 0 after a reboot.", xid_samples(state)),
    ]


def write(directory, health, observed, check=False):
    """Write ``<directory>/gpulab_gpu_health.prom`` (and the concern's state) from this run.

    Returns ``{"path", "changed"}``. :raises metrics.MetricsError: one line naming gpulab_metrics_dir.
    """
    counts = xid_counts(observed)
    indexes = gpu_indexes(health)
    boot_id = observed.get("boot_id")
    now = observed.get("now") or time.time()

    def update(saved):
        state = merge_state(saved, boot_id, counts, indexes)
        return state, families(health, state, now)

    changed = metrics.update_state(directory, CONCERN, update, check)
    return {"path": metrics.prom_path(directory, CONCERN), "changed": changed}


def write_or_warn(directory, health, observed, check=False):
    """:func:`write` that never raises: ``(result or None, warning or None)``; ``""``/None is off.

    A metrics problem must never change the verdict, the exit status or the Slurm action: every
    failure becomes one warning line naming gpulab_metrics_dir.
    """
    if not directory:
        return None, None
    try:
        return write(directory, health, observed, check), None
    except metrics.MetricsError as exc:
        return None, "GPU health metrics not written: %s" % exc
    except Exception as exc:  # noqa: BLE001 -- a metrics bug must not break the health check
        return None, "GPU health metrics not written (%s in %s): %s: %s" % (
            metrics.VARIABLE, directory, type(exc).__name__, exc)
