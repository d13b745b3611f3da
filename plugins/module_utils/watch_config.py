# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``gpulab-mirror-watch`` knows: ``/etc/gpulab/mirrors.json``, built from the inventory.

:func:`watch_config` is the one place that turns the inventory (catalog, services, policy, pin)
and the config roles' file options into the watcher's configuration, so the watcher renders the
same files with the same options as pip_mirror, conda_mirror and docker_mirror do in
failover.yml. Only services that have a client file are watched (apt repositories are not
switched behind Ansible's back). The role writes the result with mode 0600 when ``sensitive``.

:func:`config_errors` checks the file as the watcher reads it back (a hand edit, a truncated copy):
every key's type, so the watcher stops with one line naming the key instead of a traceback.
"""

from __future__ import annotations

import json
import math
import re

from ansible_collections.gpulab.provision.plugins.module_utils.host_lock import DEFAULT_LOCK_PATH
from ansible_collections.gpulab.provision.plugins.module_utils.probe_inputs import probe_args
from ansible_collections.gpulab.provision.plugins.module_utils.proxy import proxy_from_environment
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import holds_credentials
from ansible_collections.gpulab.provision.plugins.module_utils.selection import (
    DEFAULT_POLICY,
    mirror_catalog_errors,
)
from ansible_collections.gpulab.provision.plugins.module_utils.watch import DEFAULT_CONFIRM, WatchError

VERSION = 1
DEFAULT_CLIENTS = {
    "pip": {"service": "pypi", "conf_path": "/etc/pip.conf", "timeout": 10, "retries": 2, "manage_uv": True,
            "uv_conf_path": "/etc/uv/uv.toml", "backup": True, "backup_keep": 5, "credentials_group": "root"},
    "conda": {"service": "conda", "condarc_path": "/opt/conda/.condarc", "custom_channels": ["conda-forge", "pytorch", "nvidia"],
              "default_channels": ["main", "r"], "show_channel_urls": True, "backup": True, "backup_keep": 5,
              "credentials_group": "root"},
    "docker": {"service": "docker", "daemon_json_path": "/etc/docker/daemon.json", "unit": "docker",
               "containerd_certs_dir": "/etc/containerd/certs.d", "backup": True, "backup_keep": 5},
}
DEFAULT_SETTINGS = {
    "confirm": DEFAULT_CONFIRM,
    "fact_path": "/etc/ansible/facts.d/gpulab_mirrors.fact",
    "state_path": "/var/lib/gpulab-mirror-watch/state.json",
    "lock_path": DEFAULT_LOCK_PATH,
    "lease_path": "/run/gpulab-mirrors.ansible",
    "lease_s": 1800,
    "lock_wait_s": 30,
    "validate_certs": True,
    "ca_path": None,
    "environment": {},
    # The node_exporter textfile directory the watcher writes its metrics to ("": no metrics).
    "metrics_dir": "",
    # Seconds between the timer's runs (a number or a systemd time span such as 2min), for the metrics.
    "interval_s": None,
}
# Seconds per systemd time span unit (systemd.time(7)); a bare number is seconds.
TIMESPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}


def timespan_seconds(value):
    """Seconds in a systemd time span (``2min``, ``90s``, ``1h 30min``, ``120``), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) and value > 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    total, rest = 0.0, value.strip()
    for number, unit in re.findall(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)", rest):
        if unit and unit not in TIMESPAN_UNITS:
            return None
        total += float(number) * (TIMESPAN_UNITS[unit] if unit else 1)
    if re.sub(r"\s*[0-9]+(?:\.[0-9]+)?\s*[a-z]*", "", rest):
        return None
    return total if total > 0 else None


def _written_as(role):
    """How the config role writes its files (client_files): backups kept, group of a credentialed file."""
    return {"backup": bool(role.get("backup", True)), "backup_keep": role.get("backup_keep"),
            "credentials_group": role.get("credentials_group") or "root"}


def _set(value):
    """Whether an option was given: None is unset, and so is "" (``x | default(none)`` in the roles'
    vars renders as an empty string before ansible-core 2.19; no option here takes an empty string)."""
    return value is not None and value != ""


def _clients(service, opts, proxy=None):
    """The client files of ``service`` with the renderer options and file settings the config roles use.

    ``proxy``: the lab proxy's settings (:func:`proxy.proxy_settings`), given to pip and conda as
    pip_mirror and conda_mirror give it (a proxied mirror gets the proxy line, a direct one none);
    None: no gpulab_proxy, the files' own proxy lines are left as they are.
    """
    pip, conda, docker = opts["pip"], opts["conda"], opts["docker"]
    via = {"proxy": proxy} if proxy else {}
    files = []
    if service == pip["service"]:
        files.append(dict(_written_as(pip), client="pip_conf", path=pip["conf_path"],
                          options=dict({"path": pip["conf_path"], "service": service, "timeout": pip["timeout"],
                                        "retries": pip["retries"]}, **via)))
        if pip["manage_uv"]:
            files.append(dict(_written_as(pip), client="uv_toml", path=pip["uv_conf_path"],
                              options={"path": pip["uv_conf_path"], "service": service}))
    if service == conda["service"]:
        files.append(dict(_written_as(conda), client="condarc", path=conda["condarc_path"],
                          options=dict({"path": conda["condarc_path"], "service": service,
                                        "custom_channels": list(conda["custom_channels"]),
                                        "default_channels": list(conda["default_channels"]),
                                        "show_channel_urls": conda["show_channel_urls"]}, **via)))
    if service == docker["service"]:
        # failover.yml's docker_mirror_mirrors_only: registry-mirrors / insecure-registries only.
        files.append(dict(_written_as(docker), client="daemon_json", path=docker["daemon_json_path"],
                          reload=docker["unit"],
                          options={"path": docker["daemon_json_path"], "service": service, "mirrors_only": True}))
        hosts = docker["containerd_certs_dir"].rstrip("/") + "/docker.io/hosts.toml"
        files.append(dict(_written_as(docker), client="hosts_toml", path=hosts,
                          options={"path": hosts, "service": service}))
    return files


def watch_config(mirrors, services, policy=None, pin=None, clients=None, settings=None, only=None, require=None,
                 proxy=None):
    """The watcher's configuration and whether it holds credentials.

    :arg mirrors: gpulab_mirrors. :arg services: the merged gpulab_mirror_services (with kinds).
    :arg policy: gpulab_mirror_policy (defaults filled in). :arg pin: gpulab_mirror_pin.
    :arg clients: ``{pip: {...}, conda: {...}, docker: {...}}`` over :data:`DEFAULT_CLIENTS`.
    :arg settings: over :data:`DEFAULT_SETTINGS` (confirm, paths, lease_s, ca_path, validate_certs,
        environment: the proxy variables mirror_select probes with, from the proxy_environment filter).
    :arg only: service names to watch (empty: every service that has a client file).
    :arg require: gpulab_mirror_require (pinned items every mirror must serve).
    :arg proxy: the lab proxy's settings (:func:`proxy.proxy_settings`) for pip's and conda's files;
        None: taken from ``settings["environment"]`` (the watcher), no proxy there: files' lines left.
    :returns: ``{"config": {...}, "sensitive": bool, "services": [names]}``.
    :raises WatchError: the inventory is unusable (every problem, each naming its variable).
    """
    errors = mirror_catalog_errors(mirrors, services, policy=policy, pin=pin, require=require)
    if errors:
        raise WatchError("; ".join(errors), problems=errors)
    opts = {}
    for key, default in DEFAULT_CLIENTS.items():
        given = (clients or {}).get(key) or {}
        opts[key] = dict(default, **{k: v for k, v in given.items() if _set(v)})
    merged = dict(DEFAULT_SETTINGS, **{k: v for k, v in (settings or {}).items() if _set(v)})
    confirm = merged["confirm"]
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 1:
        raise WatchError("mirror_watch_confirm: %r must be a whole number >= 1" % (confirm,))
    if merged["interval_s"] is not None:
        seconds = timespan_seconds(merged["interval_s"])
        if seconds is None:
            raise WatchError("mirror_watch_interval: %r must be a systemd time span such as 2min, 90s or 1h"
                             % (merged["interval_s"],))
        merged["interval_s"] = int(seconds) if seconds == int(seconds) else seconds
    if not (merged["metrics_dir"] == "" or _abs_path(merged["metrics_dir"])):
        raise WatchError("gpulab_metrics_dir: %r must be an absolute directory path (empty turns metrics off)"
                         % (merged["metrics_dir"],))
    only = list(only or [])
    unknown = [name for name in only if name not in mirrors]
    if unknown:
        raise WatchError("mirror_watch_services: %s not in gpulab_mirrors (%s)"
                         % (", ".join(unknown), ", ".join(sorted(mirrors))))
    pin = pin or {}
    proxy = proxy or proxy_from_environment(merged.get("environment"))
    full_policy = dict(DEFAULT_POLICY, **(policy or {}))
    watched = {}
    for service, entries in mirrors.items():
        if only and service not in only:
            continue
        files = _clients(service, opts, proxy)
        if not files:
            continue
        # The probe's arguments as mirror_select makes them (requirements, freshness limits, entries
        # reduced to what the probe reads); the catalog itself for the renderers and the selection.
        watched[service] = {"probe": probe_args(service, entries, services[service], full_policy, require),
                            "mirrors": [dict(e) for e in entries], "pin": pin.get(service) or None, "clients": files}
    config = dict(merged, version=VERSION, policy=full_policy, services=watched)
    sensitive = any(holds_credentials(json.dumps(entry)) for svc in watched.values() for entry in svc["mirrors"]) \
        or holds_credentials(json.dumps(merged.get("environment") or {}))
    return {"config": config, "sensitive": sensitive, "services": sorted(watched)}


# --------------------------------------------------------------------------------------------
# The configuration as read back by the watcher

PATH_SETTINGS = ("fact_path", "state_path", "lock_path", "lease_path")
CLIENT_KINDS = ("pip_conf", "uv_toml", "condarc", "daemon_json", "hosts_toml")


def _type(value):
    return "null" if value is None else {dict: "object", list: "list", str: "string", bool: "boolean",
                                         int: "number", float: "number"}.get(type(value), type(value).__name__)


def _number(value, low, low_ok=False):
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value >= low if low_ok else value > low))


def _abs_path(value):
    return isinstance(value, str) and value.startswith("/") and "\0" not in value


def _client_errors(where, clients):
    if not isinstance(clients, list):
        return ["%s: must be a list of client files, got %s" % (where, _type(clients))]
    errors = []
    for index, entry in enumerate(clients):
        here = "%s[%d]" % (where, index)
        if not isinstance(entry, dict):
            errors.append("%s: must be an object {client, path, options}, got %s" % (here, _type(entry)))
            continue
        if entry.get("client") not in CLIENT_KINDS:
            errors.append("%s.client: %r is not one of %s" % (here, entry.get("client"), ", ".join(CLIENT_KINDS)))
        if not _abs_path(entry.get("path")):
            errors.append("%s.path: %r must be an absolute path" % (here, entry.get("path")))
        if not isinstance(entry.get("options", {}), dict):
            errors.append("%s.options: must be an object, got %s" % (here, _type(entry.get("options"))))
        if not isinstance(entry.get("backup", True), bool):
            errors.append("%s.backup: %r must be true or false" % (here, entry.get("backup")))
        keep = entry.get("backup_keep")
        if keep is not None and not (isinstance(keep, int) and not isinstance(keep, bool) and keep >= 0):
            errors.append("%s.backup_keep: %r must be a whole number >= 0 or null" % (here, keep))
        for key in ("credentials_group", "reload"):
            if entry.get(key) is not None and not (isinstance(entry[key], str) and entry[key]):
                errors.append("%s.%s: %r must be a non-empty string" % (here, key, entry[key]))
    return errors


def _service_shape_errors(name, service):
    where = "services.%s" % name
    if not isinstance(service, dict):
        return ["%s: must be an object {probe, mirrors, pin, clients}, got %s" % (where, _type(service))]
    errors = []
    probe = service.get("probe")
    if not isinstance(probe, dict):
        errors.append("%s.probe: must be an object {kind, mirrors, ...}, got %s" % (where, _type(probe)))
    else:
        if not isinstance(probe.get("kind"), str):
            errors.append("%s.probe.kind: %r must be a probe kind (a string)" % (where, probe.get("kind")))
        entries = probe.get("mirrors")
        if not isinstance(entries, list) or not all(isinstance(m, dict) and isinstance(m.get("name"), str)
                                                    for m in entries):
            errors.append("%s.probe.mirrors: must be a list of objects with a name" % where)
    mirrors = service.get("mirrors")
    if not isinstance(mirrors, list) or not mirrors:
        errors.append("%s.mirrors: must be a non-empty list of {name, url}, got %s" % (where, _type(mirrors)))
    else:
        for index, entry in enumerate(mirrors):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                    or not isinstance(entry.get("url"), str):
                errors.append("%s.mirrors[%d]: must be an object with a name and a url (strings)" % (where, index))
    pin = service.get("pin")
    if pin is not None and not isinstance(pin, str):
        errors.append("%s.pin: %r must be a mirror name or null" % (where, pin))
    errors.extend(_client_errors(where + ".clients", service.get("clients")))
    return errors


def config_errors(config):
    """Every problem of the watcher's configuration as read from ``mirrors.json``: ``[text]``.

    Each text names the key (``services.pypi.clients[0].path: ...``). Empty: the watcher can run.
    The catalog, policy and pins get the inventory's own check (:func:`selection.mirror_catalog_errors`).
    """
    if not isinstance(config, dict):
        return ["must be a JSON object (as the mirror_watch role writes it), got %s" % _type(config)]
    errors = []
    if config.get("version") != VERSION or isinstance(config.get("version"), bool):
        errors.append("version: %r is not %d; this is not a configuration the mirror_watch role wrote"
                      % (config.get("version"), VERSION))
    for key in PATH_SETTINGS:
        if not _abs_path(config.get(key, DEFAULT_SETTINGS[key])):
            errors.append("%s: %r must be an absolute path" % (key, config.get(key)))
    confirm = config.get("confirm", DEFAULT_CONFIRM)
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 1:
        errors.append("confirm: %r must be a whole number >= 1" % (confirm,))
    if not _number(config.get("lease_s", DEFAULT_SETTINGS["lease_s"]), 0):
        errors.append("lease_s: %r must be a number of seconds > 0" % (config.get("lease_s"),))
    if not _number(config.get("lock_wait_s", DEFAULT_SETTINGS["lock_wait_s"]), 0, low_ok=True):
        errors.append("lock_wait_s: %r must be a number of seconds >= 0" % (config.get("lock_wait_s"),))
    metrics_dir = config.get("metrics_dir", "")
    if metrics_dir is not None and metrics_dir != "" and not _abs_path(metrics_dir):
        errors.append("metrics_dir: %r must be an absolute directory path, or empty (no metrics)" % (metrics_dir,))
    if config.get("interval_s") is not None and not _number(config.get("interval_s"), 0):
        errors.append("interval_s: %r must be a number of seconds > 0 or null" % (config.get("interval_s"),))
    if not isinstance(config.get("validate_certs", True), bool):
        errors.append("validate_certs: %r must be true or false" % (config.get("validate_certs"),))
    if config.get("ca_path") is not None and not _abs_path(config.get("ca_path")):
        errors.append("ca_path: %r must be an absolute path or null" % (config.get("ca_path"),))
    environment = config.get("environment", {})
    if not isinstance(environment, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in environment.items()):
        errors.append("environment: must be an object of strings (proxy variables)")
    policy = config.get("policy", {})
    if not isinstance(policy, dict):
        errors.append("policy: must be an object, got %s" % _type(policy))
        policy = None
    services = config.get("services")
    if not isinstance(services, dict):
        errors.append("services: must be an object of service -> {probe, mirrors, pin, clients}, got %s"
                      % _type(services))
        return errors
    shape = []
    for name, service in services.items():
        shape.extend(_service_shape_errors(name, service))
    errors.extend(shape)
    if not shape and services:
        catalog = {name: service["mirrors"] for name, service in services.items()}
        kinds = {name: {"kind": service["probe"]["kind"]} for name, service in services.items()}
        pins = {name: service.get("pin") for name, service in services.items()}
        errors.extend(mirror_catalog_errors(catalog, kinds, policy=policy, pin=pins))
    return errors
