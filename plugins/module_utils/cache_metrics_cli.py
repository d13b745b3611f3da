# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``gpulab-cache-metrics``: the cache node's metrics as a command (built into a zipapp by the cache_node role).

Standard library only: the node needs python3 and nothing else. A systemd timer runs it every
``cache_node_metrics_interval``; each run

* probes each service's own endpoint on the node (devpi's ``/+api``, nginx's health location, a
  registry's ``/v2/``) and each service's upstream with the collection's probe (pypi, conda and
  docker kinds, as mirror_select does; through the lab's proxy when the configuration names one),
  all under one short deadline;
* sums the bytes under each service's data directory, each walk under a time budget (a cache too
  big to walk in time gets no series this run, and a line on stderr says so);
* reads the free bytes of each data directory's file system;
* reads a registry proxy's hit and miss counts from its debug server (``/metrics``, else
  distribution 2.8's ``/debug/vars``);
* writes ``<metrics_dir>/gpulab_cache_node.prom`` for node_exporter's textfile collector.

    gpulab-cache-metrics [--config PATH] [--metrics-dir DIR] [--json]

Exit status: 0 when it ran, even when a probe failed or the metrics file could not be written
(one line on stderr naming gpulab_metrics_dir: the caches are served all the same); 2 when the
configuration is unusable.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import threading
import time
import urllib.error
import urllib.request

from ansible_collections.gpulab.provision.plugins.module_utils import probe_session
from ansible_collections.gpulab.provision.plugins.module_utils.cache_metrics import (
    BLOB_CACHE,
    CONCERN,
    SERVICES,
    families,
    registry_requests,
)
from ansible_collections.gpulab.provision.plugins.module_utils.metrics import MetricsError, write_prom
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import mask_url
from ansible_collections.gpulab.provision.plugins.module_utils.printable import one_line
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import UrlOpener
from ansible_collections.gpulab.provision.plugins.module_utils.selection import mask_text
from ansible_collections.gpulab.provision.plugins.module_utils.watch_probe import probe_services

PROGRAM = "gpulab-cache-metrics"
DEFAULT_CONFIG = "/etc/gpulab-cache/metrics.json"
USER_AGENT = "gpulab-cache-metrics"
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_DISK_BUDGET_S = 15.0
EXIT_OK = 0
EXIT_CONFIG = 2
UPSTREAM_KINDS = {"pypi": "pypi", "conda": "conda", "docker": "docker"}
# A registry's debug answer is read up to this many bytes (its /metrics is a few tens of kB).
READ_CAP = 4 * 1024 * 1024


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line."""


def _seconds(config, key, default):
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        raise ConfigError("%s: %r must be a number of seconds (0 < s <= 3600)" % (key, value))
    return float(value)


def check_config(config):
    """The configuration, checked: ``(settings, entries)``. :raises ConfigError:"""
    if not isinstance(config, dict):
        raise ConfigError("the configuration must be a JSON object")
    settings = {
        "metrics_dir": config.get("metrics_dir") or "",
        "timeout_s": _seconds(config, "timeout_s", DEFAULT_TIMEOUT_S),
        "disk_budget_s": _seconds(config, "disk_budget_s", DEFAULT_DISK_BUDGET_S),
        "proxy": config.get("proxy"),
        "ca_path": config.get("ca_path") or None,
    }
    if not isinstance(settings["metrics_dir"], str):
        raise ConfigError("metrics_dir: %r must be a directory path" % (settings["metrics_dir"],))
    if settings["proxy"] is not None and not isinstance(settings["proxy"], dict):
        raise ConfigError("proxy: must be {http, https, no_proxy} or null")
    entries = config.get("services")
    if not isinstance(entries, list):
        raise ConfigError("services: must be a list of {service, endpoint, upstream, data_dir}")
    for index, entry in enumerate(entries):
        here = "services[%d]" % index
        if not isinstance(entry, dict) or entry.get("service") not in SERVICES:
            raise ConfigError("%s: must be an object whose service is one of %s" % (here, ", ".join(SERVICES)))
        for key in ("endpoint", "data_dir", "registry", "registry_debug"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise ConfigError("%s.%s: must be a string" % (here, key))
        upstream = entry.get("upstream")
        if upstream is not None and (not isinstance(upstream, dict) or not isinstance(upstream.get("url"), str)
                                     or not isinstance(upstream.get("options") or {}, dict)):
            raise ConfigError("%s.upstream: must be {url, insecure, options}" % here)
    return settings, entries


def load_config(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return check_config(json.load(handle))
    except OSError as exc:
        raise ConfigError("%s: %s" % (path, exc.strerror or exc))
    except ValueError as exc:
        raise ConfigError("%s: not JSON: %s" % (path, exc))


# --------------------------------------------------------------------------------------------
# Measuring


def _name(entry):
    return entry["service"] + ("/" + entry["registry"] if entry.get("registry") else "")


def probe_all(entries, settings):
    """``{index: (up, upstream_up, upstream_duration_s)}``: local endpoints and upstreams, all at once."""
    local, remote = {}, {}
    for index, entry in enumerate(entries):
        if entry.get("endpoint"):
            local[str(index)] = {"kind": "http", "mirrors": [{"name": "local", "url": entry["endpoint"], "insecure": True}],
                                 "options": {}}
        upstream = entry.get("upstream")
        if upstream and upstream.get("url"):
            remote[str(index)] = {"kind": UPSTREAM_KINDS[entry["service"]],
                                  "mirrors": [{"name": "upstream", "url": upstream["url"],
                                               "insecure": bool(upstream.get("insecure"))}],
                                  "options": dict(upstream.get("options") or {})}
    answers = {}

    def run(name, requests, opener):
        if requests:
            answers[name] = probe_services(requests, settings["timeout_s"], opener=opener)["services"]

    # The node's own endpoints are never reached through a proxy; the upstreams the way the node's
    # clients reach them (the lab's proxy settings, or the process's environment without them).
    remote_opener = UrlOpener(ca_path=settings["ca_path"], proxy=settings["proxy"])
    threads = [threading.Thread(target=run, args=("local", local, UrlOpener(proxy={}))),
               threading.Thread(target=run, args=("remote", remote, remote_opener))]
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join(settings["timeout_s"] * 2 + 10)
    results, problems = {}, []

    def verdict(kind, key):
        answer = answers.get(kind, {}).get(key)
        if answer is None:
            return None, None
        if answer.get("error"):
            where = "endpoint" if kind == "local" else "upstream"
            problems.append("%s: %s probe: %s" % (_name(entries[int(key)]), where, answer["error"]))
            return False, None
        result = (answer.get("results") or [{}])[0]
        latency = result.get("latency_ms")
        if not result.get("healthy"):
            where = "endpoint" if kind == "local" else "upstream"
            problems.append("%s: %s %s: %s" % (_name(entries[int(key)]), where, result.get("url"),
                                               result.get("reason") or "unhealthy"))
        return bool(result.get("healthy")), (latency / 1000.0 if isinstance(latency, (int, float)) else None)

    for index in range(len(entries)):
        up, _latency = verdict("local", str(index)) if str(index) in local else (None, None)
        upstream_up, duration = verdict("remote", str(index)) if str(index) in remote else (None, None)
        results[index] = (up, upstream_up, duration)
    return results, problems


def disk_usage(path, budget_s, clock=time.monotonic):
    """``(bytes, complete)``: apparent size of every file under ``path`` (a hard-linked file once).

    Stops when ``budget_s`` is spent: ``complete`` is then False. Symbolic links are not followed.
    """
    deadline = clock() + budget_s
    total, seen, stack = 0, set(), [path]
    checked = 0
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as listing:
                for item in listing:
                    checked += 1
                    if checked % 256 == 0 and clock() > deadline:
                        return total, False
                    try:
                        info = item.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(item.path)
                    elif stat.S_ISREG(info.st_mode):
                        if info.st_nlink > 1:
                            if (info.st_dev, info.st_ino) in seen:
                                continue
                            seen.add((info.st_dev, info.st_ino))
                        total += info.st_size
        except OSError:
            if current == path:
                raise
            continue
        if clock() > deadline:
            return total, not stack
    return total, True


def avail_bytes(path):
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def _get(url, timeout):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with opener.open(request, timeout=timeout) as resp:
        return resp.read(READ_CAP).decode("utf-8", "replace")


def registry_counts(base, timeout):
    """A registry proxy's hit and miss counts from its debug server at ``base``; ``(counts, problem)``."""
    base = base.rstrip("/")
    metrics_text, debug_vars, problems = None, None, []
    for path in ("/metrics", "/debug/vars"):
        try:
            text = _get(base + path, timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problems.append("%s%s: %s" % (mask_url(base), path, getattr(exc, "reason", None) or exc))
            continue
        if path == "/metrics":
            metrics_text = text
            counts = registry_requests(metrics_text=text)
            if counts:
                return counts, None
        else:
            debug_vars = text
    counts = registry_requests(metrics_text, debug_vars)
    if counts:
        return counts, None
    return None, "; ".join(problems) or "%s: no proxy hit or miss counts (is the registry in proxy mode?)" % mask_url(base)


def measure(settings, entries, clock=time.monotonic, now=time.time):
    """One run: ``({"timestamp", "services": [...]}, problems)`` (see :mod:`cache_metrics`)."""
    probed, problems = probe_all(entries, settings)
    out = []
    for index, entry in enumerate(entries):
        up, upstream_up, duration = probed[index]
        upstream = (entry.get("upstream") or {}).get("url")
        item = {"service": entry["service"], "registry": entry.get("registry") or None, "up": up,
                "upstream": upstream or None, "upstream_up": upstream_up, "upstream_duration_s": duration,
                "disk_bytes": None, "avail_bytes": None, "requests": None}
        name = _name(entry)
        data_dir = entry.get("data_dir")
        if data_dir:
            try:
                item["avail_bytes"] = avail_bytes(data_dir)
                size, complete = disk_usage(data_dir, settings["disk_budget_s"], clock)
                if complete:
                    item["disk_bytes"] = size
                else:
                    problems.append("%s: %s holds more than %d bytes not summed within %g s (disk_budget_s):"
                                    " no disk series this run" % (name, data_dir, size, settings["disk_budget_s"]))
            except OSError as exc:
                problems.append("%s: %s: %s" % (name, data_dir, exc.strerror or exc))
        if entry.get("registry_debug"):
            counts, problem = registry_counts(entry["registry_debug"], settings["timeout_s"])
            item["requests"] = counts
            if problem:
                problems.append("%s: registry counts: %s" % (name, problem))
        out.append(item)
    return {"timestamp": now(), "services": out}, problems


# --------------------------------------------------------------------------------------------
# The command


def _say(err, text):
    err.write("%s: %s\n" % (PROGRAM, one_line(mask_text(str(text)))))
    err.flush()


def _line(item):
    name = _name(item)
    parts = []
    if item["up"] is not None:
        parts.append("up" if item["up"] else "DOWN")
    if item["upstream_up"] is not None:
        parts.append("upstream %s %s" % (mask_url(item["upstream"]), "up" if item["upstream_up"] else "DOWN"))
    if item["disk_bytes"] is not None:
        parts.append("%d bytes" % item["disk_bytes"])
    if item["requests"]:
        parts.append(", ".join("%s %s %d" % (kind, result, count)
                               for (kind, result), count in sorted(item["requests"].items())))
    return "%s: %s" % (name, "; ".join(parts) or "measured")


def main(argv=None, out=None, err=None):
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Measure the lab cache node and write "
                                     "gpulab_cache_node.prom for node_exporter's textfile collector.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="the JSON configuration the cache_node role "
                        "writes (default %(default)s)")
    parser.add_argument("--metrics-dir", default=None, help="write gpulab_cache_node.prom there (default: the "
                        "configuration's metrics_dir; empty: write nothing)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out, err = out or sys.stdout, err or sys.stderr
    probe_session.USER_AGENT = USER_AGENT
    try:
        settings, entries = load_config(args.config)
    except ConfigError as exc:
        _say(err, exc)
        return EXIT_CONFIG
    directory = settings["metrics_dir"] if args.metrics_dir is None else args.metrics_dir
    run, problems = measure(settings, entries)
    for problem in problems:
        _say(err, problem)
    if args.json:
        shown = dict(run, services=[dict(item, upstream=mask_url(item["upstream"]) if item["upstream"] else None,
                                         requests=None if item["requests"] is None else
                                         {"%s_%s" % key: count for key, count in sorted(item["requests"].items())})
                                    for item in run["services"]])
        out.write(json.dumps(shown, indent=2, sort_keys=True) + "\n")
    else:
        for item in run["services"]:
            out.write(_line(item) + "\n")
    out.flush()
    if directory:
        try:
            write_prom(directory, CONCERN, families(run))
        except MetricsError as exc:
            _say(err, exc)
    return EXIT_OK


__all__ = ["BLOB_CACHE", "main"]
