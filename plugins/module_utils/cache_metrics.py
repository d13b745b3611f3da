# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``cache_node`` metrics (``gpulab_cache_node.prom``) from what one run of ``gpulab-cache-metrics`` measured.

Pure functions: :func:`families` turns a run's measurements into the metric families that
:func:`metrics.write_prom` writes; :func:`registry_requests` reads a registry proxy's hit and
miss counts from what its debug server serves. The command that measures is
:mod:`cache_metrics_cli`.

A run is ``{"timestamp": float, "services": [entry, ...]}``, one entry per endpoint the node serves:

* ``service``: pypi, conda or docker; ``registry`` (docker only): the registry's name (docker.io,
  ghcr.io), or :data:`BLOB_CACHE` for the registries' shared nginx blob cache (disk only);
* ``up``: the node's own endpoint answered (True/False; None: not probed);
* ``upstream``: the upstream URL (masked when rendered); ``upstream_up`` True/False/None;
  ``upstream_duration_s``: the healthy upstream probe's latency;
* ``disk_bytes``: bytes under the service's data directory (None: not measured in time);
  ``avail_bytes``: free bytes of that file system for an unprivileged user;
* ``requests``: ``{(type, result): count}`` from the registry (type manifest or blob, result hit
  or miss), or None where the service does not expose it.

Every series carries ``service`` (and ``registry`` for docker); never a host label: Prometheus'
``instance`` says which node.
"""

from __future__ import annotations

import json
import math
import re

from ansible_collections.gpulab.provision.plugins.module_utils.metrics import family

CONCERN = "cache_node"
SERVICES = ("pypi", "conda", "docker")
# The ``registry`` label of the shared nginx blob cache in front of the registries (disk only).
# Registry names always hold a dot, so it never names a registry.
BLOB_CACHE = "blob_cache"

# distribution 3's Prometheus counters (labelled type=blob|manifest).
PROM_HITS = "registry_proxy_hits_total"
PROM_MISSES = "registry_proxy_misses_total"

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')


def parse_prometheus(text, names):
    """Samples of the metrics ``names`` in a Prometheus text exposition: ``{name: [(labels, value)]}``.

    Only what this module reads: plain samples (no histograms needed), label values unescaped;
    a line that does not parse is skipped.
    """
    found = {name: [] for name in names}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match or match.group(1) not in found:
            continue
        labels = {}
        for key, value in _LABEL.findall(match.group(3) or ""):
            labels[key] = value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        try:
            number = float(match.group(4))
        except ValueError:
            continue
        found[match.group(1)].append((labels, number))
    return found


def _count(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        return None
    return int(value)


def requests_from_prometheus(text):
    """``{(type, result): count}`` from distribution 3's ``registry_proxy_hits_total`` and
    ``registry_proxy_misses_total``; None when the text has neither (distribution 2.8 does not
    export them: its proxy counts are in ``/debug/vars``, see :func:`requests_from_debug_vars`)."""
    found = parse_prometheus(text, (PROM_HITS, PROM_MISSES))
    if not found[PROM_HITS] and not found[PROM_MISSES]:
        return None
    counts = {}
    for name, result in ((PROM_HITS, "hit"), (PROM_MISSES, "miss")):
        for labels, value in found[name]:
            kind = labels.get("type", "")
            number = _count(value)
            if kind in ("blob", "manifest") and number is not None:
                counts[(kind, result)] = counts.get((kind, result), 0) + number
    return counts or None


def requests_from_debug_vars(document):
    """``{("manifest", "hit"|"miss"): count}`` from distribution 2.8's expvar ``/debug/vars``.

    Its ``registry.proxy.manifests`` counts every manifest served in ``Requests`` (and again in
    ``Hits``: a miss too) and each fetch from the upstream in ``Misses``: a hit is ``Requests -
    Misses``. Its blob counts are left out: 2.8 never counts a blob miss (``Misses`` stays 0,
    ``BytesPulled`` too) and counts a missed blob twice in ``Requests``, once for the client and
    once for its own copy into the cache. ``document``: the parsed JSON (or its text). None when the
    document has no proxy counts (a registry not in proxy mode, another version).
    """
    if isinstance(document, (str, bytes)):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    try:
        manifests = document["registry"]["proxy"]["manifests"]
        requests, misses = _count(manifests["Requests"]), _count(manifests["Misses"])
    except (KeyError, TypeError):
        return None
    if requests is None or misses is None:
        return None
    return {("manifest", "hit"): max(0, requests - misses), ("manifest", "miss"): misses}


def registry_requests(metrics_text=None, debug_vars=None):
    """A registry's hit and miss counts: its Prometheus counters where it has them, else its expvar ones."""
    return requests_from_prometheus(metrics_text) or requests_from_debug_vars(debug_vars)


def _labels(entry):
    labels = {"service": entry["service"]}
    if entry.get("registry"):
        labels["registry"] = entry["registry"]
    return labels


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    return value


def families(run):
    """The ``cache_node`` concern's families from one run (see the module docstring for ``run``)."""
    up, upstream_up, duration, disk, avail, requests = [], [], [], [], [], []
    for entry in run.get("services") or []:
        labels = _labels(entry)
        if entry.get("up") is not None:
            up.append((labels, 1 if entry["up"] else 0))
        if entry.get("upstream") and entry.get("upstream_up") is not None:
            upstream_up.append((dict(labels, upstream=entry["upstream"]), 1 if entry["upstream_up"] else 0))
            seconds = _number(entry.get("upstream_duration_s"))
            if entry["upstream_up"] and seconds is not None and seconds >= 0:
                duration.append((labels, seconds))
        number = _number(entry.get("disk_bytes"))
        if number is not None and number >= 0:
            disk.append((labels, int(number)))
        number = _number(entry.get("avail_bytes"))
        if number is not None and number >= 0:
            avail.append((labels, int(number)))
        for (kind, result), count in sorted((entry.get("requests") or {}).items()):
            if _count(count) is not None:
                requests.append((dict(labels, type=kind, result=result), _count(count)))
    out = [
        family("gpulab_cache_service_up", "gauge",
               "Whether the cache node's own endpoint of the service answers locally (1) or not (0).", up),
        family("gpulab_cache_upstream_up", "gauge",
               "Whether the service's upstream mirror is reachable from the cache node (1) or not (0).", upstream_up),
        family("gpulab_cache_upstream_probe_duration_seconds", "gauge",
               "Latency of the last healthy probe of the service's upstream from the cache node.", duration),
        family("gpulab_cache_disk_used_bytes", "gauge",
               "Bytes stored by the service under its data directory (apparent size).", disk),
        family("gpulab_cache_filesystem_avail_bytes", "gauge",
               "Bytes available on the file system holding the service's data directory.", avail),
        family("gpulab_cache_requests_total", "counter",
               "Requests the service answered from its cache (hit) or fetched from its upstream (miss), as the"
               " service counts them (the registry proxy; reset when it restarts).", requests),
    ]
    timestamp = _number(run.get("timestamp"))
    if timestamp is not None:
        out.append(family("gpulab_cache_last_run_timestamp_seconds", "gauge",
                          "When gpulab-cache-metrics last measured the cache node (Unix time).", [({}, timestamp)]))
    return out
