# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``gpulab-mirror-watch`` knows: ``/etc/gpulab/mirrors.json``, built from the inventory.

:func:`watch_config` is the one place that turns the inventory (catalog, services, policy, pin)
and the config roles' file options into the watcher's configuration, so the watcher renders the
same files with the same options as pip_mirror, conda_mirror and docker_mirror do in
failover.yml. Only services that have a client file are watched (apt repositories are not
switched behind Ansible's back). The role writes the result with mode 0600 when ``sensitive``.
"""

from __future__ import annotations

import json

from ansible_collections.gpulab.provision.plugins.module_utils.host_lock import DEFAULT_LOCK_PATH
from ansible_collections.gpulab.provision.plugins.module_utils.probe_inputs import probe_args
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
}


def _written_as(role):
    """How the config role writes its files (client_files): backups kept, group of a credentialed file."""
    return {"backup": bool(role.get("backup", True)), "backup_keep": role.get("backup_keep"),
            "credentials_group": role.get("credentials_group") or "root"}


def _clients(service, opts):
    """The client files of ``service`` with the renderer options and file settings the config roles use."""
    pip, conda, docker = opts["pip"], opts["conda"], opts["docker"]
    files = []
    if service == pip["service"]:
        files.append(dict(_written_as(pip), client="pip_conf", path=pip["conf_path"],
                          options={"path": pip["conf_path"], "service": service, "timeout": pip["timeout"],
                                   "retries": pip["retries"]}))
        if pip["manage_uv"]:
            files.append(dict(_written_as(pip), client="uv_toml", path=pip["uv_conf_path"],
                              options={"path": pip["uv_conf_path"], "service": service}))
    if service == conda["service"]:
        files.append(dict(_written_as(conda), client="condarc", path=conda["condarc_path"],
                          options={"path": conda["condarc_path"], "service": service,
                                   "custom_channels": list(conda["custom_channels"]),
                                   "default_channels": list(conda["default_channels"]),
                                   "show_channel_urls": conda["show_channel_urls"]}))
    if service == docker["service"]:
        # failover.yml's docker_mirror_mirrors_only: registry-mirrors / insecure-registries only.
        files.append(dict(_written_as(docker), client="daemon_json", path=docker["daemon_json_path"],
                          reload=docker["unit"],
                          options={"path": docker["daemon_json_path"], "service": service, "mirrors_only": True}))
        hosts = docker["containerd_certs_dir"].rstrip("/") + "/docker.io/hosts.toml"
        files.append(dict(_written_as(docker), client="hosts_toml", path=hosts,
                          options={"path": hosts, "service": service}))
    return files


def watch_config(mirrors, services, policy=None, pin=None, clients=None, settings=None, only=None, require=None):
    """The watcher's configuration and whether it holds credentials.

    :arg mirrors: gpulab_mirrors. :arg services: the merged gpulab_mirror_services (with kinds).
    :arg policy: gpulab_mirror_policy (defaults filled in). :arg pin: gpulab_mirror_pin.
    :arg clients: ``{pip: {...}, conda: {...}, docker: {...}}`` over :data:`DEFAULT_CLIENTS`.
    :arg settings: over :data:`DEFAULT_SETTINGS` (confirm, paths, lease_s, ca_path, validate_certs,
        environment: the proxy variables mirror_select probes with, from the proxy_environment filter).
    :arg only: service names to watch (empty: every service that has a client file).
    :arg require: gpulab_mirror_require (pinned items every mirror must serve).
    :returns: ``{"config": {...}, "sensitive": bool, "services": [names]}``.
    :raises WatchError: the inventory is unusable (every problem, each naming its variable).
    """
    errors = mirror_catalog_errors(mirrors, services, policy=policy, pin=pin, require=require)
    if errors:
        raise WatchError("; ".join(errors), problems=errors)
    opts = {}
    for key, default in DEFAULT_CLIENTS.items():
        given = (clients or {}).get(key) or {}
        opts[key] = dict(default, **{k: v for k, v in given.items() if v is not None})
    merged = dict(DEFAULT_SETTINGS, **{k: v for k, v in (settings or {}).items() if v is not None})
    confirm = merged["confirm"]
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 1:
        raise WatchError("mirror_watch_confirm: %r must be a whole number >= 1" % (confirm,))
    only = list(only or [])
    unknown = [name for name in only if name not in mirrors]
    if unknown:
        raise WatchError("mirror_watch_services: %s not in gpulab_mirrors (%s)"
                         % (", ".join(unknown), ", ".join(sorted(mirrors))))
    pin = pin or {}
    full_policy = dict(DEFAULT_POLICY, **(policy or {}))
    watched = {}
    for service, entries in mirrors.items():
        if only and service not in only:
            continue
        files = _clients(service, opts)
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
