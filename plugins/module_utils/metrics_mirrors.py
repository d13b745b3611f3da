# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``mirrors`` and ``mirror_watch`` metrics (docs/metrics.md), written with :mod:`metrics`.

Two writers share the ``mirrors`` concern: ``gpulab-mirror-watch`` after each run and the module
``mirror_probe_all`` (mirror_select, failover.yml). Each calls :func:`record_mirrors` with what its
run observed: the probe results (``run_probe``'s dicts, URLs masked), the chosen mirror per service
and the switches it made. The concern's state (``.gpulab-mirrors.json``, under the concern's lock)
keeps per service and mirror the last probe (time, success, latency, serial lag, sync age) and the
last success, the active mirror per service and the switch counters, so a run that probes one
mirror does not erase what another run learnt about the others.

Staleness: probe outcomes (success, duration, lag, sync age) are exported only for mirrors probed
within the last ``stale_s`` seconds (default :data:`DEFAULT_STALE_S`); a mirror not probed for
longer has no such series (unknown, not stale data). A mirror no longer in the catalog leaves the
state (no series for a mirror the host no longer has); the switch counters stay.

:func:`update_mirrors` and :func:`update_watch` are pure (state in, state and families out);
:func:`record_mirrors` and :func:`record_watch_run` apply them with :func:`metrics.update_state`.
"""

from __future__ import annotations

import math

from ansible_collections.gpulab.provision.plugins.module_utils import metrics
from ansible_collections.gpulab.provision.plugins.module_utils.metrics import counter_add, family, key_labels, series_key

MIRRORS = "mirrors"
MIRROR_WATCH = "mirror_watch"
DEFAULT_STALE_S = 900
# The selection statuses that name a chosen mirror (gpulab_mirrors_selected).
ACTIVE_STATUS = ("ok", "pinned", "pin_unhealthy", "kept")
SWITCH_REASONS = ("failover", "switch_back", "ansible")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _stamp(value):
    return round(float(value), 3)


def _dict(value):
    return value if isinstance(value, dict) else {}


def observe(entry, result, now):
    """A mirror's state entry after probe ``result`` at ``now`` (``entry``: the previous one or None)."""
    entry = dict(entry or {})
    healthy = result.get("healthy") is True
    latency = result.get("latency_ms")
    lag = result.get("lag")
    age_h = result.get("age_h")
    entry.update(
        url=metrics.label_value(result.get("url")),
        probed=_stamp(now),
        success=1 if healthy else 0,
        duration_s=round(latency / 1000.0, 6) if healthy and _number(latency) and latency >= 0 else None,
        lag=lag if isinstance(lag, int) and not isinstance(lag, bool) else None,
        age_s=round(age_h * 3600.0, 3) if _number(age_h) and age_h >= 0 else None,
    )
    if healthy:
        entry["last_success"] = _stamp(now)
    return entry


def update_mirrors(data, now, results=None, selected=None, switches=None, catalog=None, complete=False):
    """The ``mirrors`` concern's state after one run (pure).

    :arg data: the saved state (``{}`` the first time).
    :arg results: service -> list of probe results (``run_probe``'s, URLs masked) of this run.
    :arg selected: service -> the chosen mirror ``{name, status, url_masked}`` (a
        gpulab_mirrors_selected entry or the local fact's), or None / status ``none``: no mirror chosen.
        Services not given keep their active mirror.
    :arg switches: list of ``{service, from, to, reason}`` made by this run (each counts 1).
    :arg catalog: service -> mirror names the host has now; a mirror of such a service that is not
        listed leaves the state, and with ``complete`` so does every service not listed.
    :returns: the new state.
    """
    data = _dict(data)
    probes = {svc: {name: dict(entry) for name, entry in _dict(mirrors).items() if isinstance(entry, dict)}
              for svc, mirrors in _dict(data.get("probes")).items()}
    active = {svc: dict(entry) for svc, entry in _dict(data.get("active")).items() if isinstance(entry, dict)}
    switched = {key: count for key, count in _dict(data.get("switches")).items()
                if _number(count) and count >= 0 and key_labels(key) is not None}
    names = {svc: set(items) for svc, items in _dict(catalog).items()}

    for service, items in _dict(results).items():
        for result in items or []:
            if not isinstance(result, dict) or not isinstance(result.get("name"), str):
                continue
            if service in names and result["name"] not in names[service]:
                continue
            mine = probes.setdefault(service, {})
            mine[result["name"]] = observe(mine.get(result["name"]), result, now)

    for service, entry in _dict(selected).items():
        if isinstance(entry, dict) and entry.get("status") in ACTIVE_STATUS and isinstance(entry.get("name"), str):
            active[service] = {"mirror": entry["name"], "status": entry["status"],
                               "url": metrics.label_value(entry.get("url_masked") or entry.get("url"))}
        else:
            active.pop(service, None)

    for switch in switches or []:
        labels = {"service": switch.get("service"), "from": switch.get("from") or "", "to": switch.get("to") or "",
                  "reason": switch.get("reason")}
        counter_add(switched, series_key(labels))

    if names:
        for service in list(probes):
            if service in names:
                probes[service] = {n: e for n, e in probes[service].items() if n in names[service]}
            elif complete:
                del probes[service]
        for service in list(active):
            if (service in names and active[service]["mirror"] not in names[service]) or (complete and service not in names):
                del active[service]
    probes = {svc: mirrors for svc, mirrors in probes.items() if mirrors}
    return {"probes": probes, "active": active, "switches": switched}


def mirrors_families(data, now, stale_s=DEFAULT_STALE_S):
    """The ``mirrors`` concern's families from its state (see docs/metrics.md)."""
    data = _dict(data)
    rows = {name: [] for name in ("active", "success", "duration", "lag", "age", "probed", "last_success", "switches")}
    for service, entry in sorted(_dict(data.get("active")).items()):
        rows["active"].append(({"service": service, "mirror": entry.get("mirror"), "url": entry.get("url"),
                                "status": entry.get("status")}, 1))
    for service, mirrors in sorted(_dict(data.get("probes")).items()):
        for name, entry in sorted(_dict(mirrors).items()):
            labels = {"service": service, "mirror": name}
            probed = entry.get("probed")
            if _number(probed):
                rows["probed"].append((labels, probed))
            if _number(entry.get("last_success")):
                rows["last_success"].append((labels, entry["last_success"]))
            if not _number(probed) or now - probed > stale_s:
                continue
            rows["success"].append((labels, 1 if entry.get("success") else 0))
            for key, row in (("duration_s", "duration"), ("lag", "lag"), ("age_s", "age")):
                if _number(entry.get(key)):
                    rows[row].append((labels, entry[key]))
    for key, count in sorted(_dict(data.get("switches")).items()):
        labels = key_labels(key)
        if labels is not None and _number(count):
            rows["switches"].append((labels, count))
    return [
        family("gpulab_mirror_active_info", "gauge",
               "The mirror each service's clients use now (status: ok, pinned, pin_unhealthy, kept).", rows["active"]),
        family("gpulab_mirror_probe_success", "gauge",
               "Whether the mirror's last probe found it healthy (1) or not (0); only for mirrors probed recently.",
               rows["success"]),
        family("gpulab_mirror_probe_duration_seconds", "gauge",
               "Latency of the mirror's last healthy probe in seconds; only for mirrors probed recently.",
               rows["duration"]),
        family("gpulab_mirror_serial_lag", "gauge",
               "PyPI serials the mirror is behind the newest one seen in the same probe; only for mirrors probed recently.",
               rows["lag"]),
        family("gpulab_mirror_sync_age_seconds", "gauge",
               "Seconds since the mirror's last sync, as it reports it; only for mirrors probed recently.", rows["age"]),
        family("gpulab_mirror_last_probe_timestamp_seconds", "gauge",
               "Unix time of the mirror's last probe.", rows["probed"]),
        family("gpulab_mirror_last_success_timestamp_seconds", "gauge",
               "Unix time of the mirror's last healthy probe.", rows["last_success"]),
        family("gpulab_mirror_switches_total", "counter",
               "Mirror switches per service (reason: failover, switch_back by the watcher; ansible: a run recorded "
               "another choice).", rows["switches"]),
    ]


def record_mirrors(directory, now, results=None, selected=None, switches=None, catalog=None, complete=False,
                   stale_s=DEFAULT_STALE_S, check=False):
    """Update the ``mirrors`` concern in ``directory`` (:func:`update_mirrors`) and write its file.

    Returns whether ``gpulab_mirrors.prom`` changed (would, in ``check``: nothing is written).
    :raises metrics.MetricsError: one line naming gpulab_metrics_dir.
    """
    def update(data):
        new = update_mirrors(data, now, results, selected, switches, catalog, complete)
        return new, mirrors_families(new, now, stale_s)
    return metrics.update_state(directory, MIRRORS, update, check)


def update_watch(data, status):
    """The ``mirror_watch`` concern's state after a run that exited ``status`` (pure)."""
    runs = {str(key): count for key, count in _dict(_dict(data).get("runs")).items() if _number(count) and count >= 0}
    counter_add(runs, str(int(status)))
    return {"runs": runs}


def watch_families(data, now, duration_s, status, interval_s=None, decisions=None):
    """The ``mirror_watch`` concern's families for one run (``decisions``: service -> action)."""
    interval = [({}, interval_s)] if _number(interval_s) and interval_s > 0 else []
    return [
        family("gpulab_mirror_watch_last_run_timestamp_seconds", "gauge",
               "Unix time the mirror watcher's last run ended.", [({}, _stamp(now))]),
        family("gpulab_mirror_watch_last_run_duration_seconds", "gauge",
               "Seconds the mirror watcher's last run took.", [({}, round(max(float(duration_s), 0.0), 3))]),
        family("gpulab_mirror_watch_last_exit_status", "gauge",
               "Exit status of the mirror watcher's last run (0 ok; see gpulab-mirror-watch --help).",
               [({}, int(status))]),
        family("gpulab_mirror_watch_interval_seconds", "gauge",
               "Seconds between the mirror watcher's runs (its systemd timer).", interval),
        family("gpulab_mirror_watch_runs_total", "counter", "Mirror watcher runs by exit status.",
               [({"status": key}, count) for key, count in sorted(_dict(_dict(data).get("runs")).items())]),
        family("gpulab_mirror_watch_decision_info", "gauge", "The mirror watcher's last decision per service.",
               [({"service": service, "action": action}, 1) for service, action in sorted(_dict(decisions).items())
                if isinstance(action, str)]),
    ]


def record_watch_run(directory, now, duration_s, status, interval_s=None, decisions=None, check=False):
    """Count one watcher run and write ``gpulab_mirror_watch.prom``; see :func:`record_mirrors`."""
    def update(data):
        new = update_watch(data, status)
        return new, watch_families(new, now, duration_s, status, interval_s, decisions)
    return metrics.update_state(directory, MIRROR_WATCH, update, check)
