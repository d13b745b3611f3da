# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab cache nodes: their settings, the endpoints they serve, and the client catalogs that prefer them.

Pure functions, shared by the role ``gpulab.provision.cache_node`` (which checks and renders a
node's settings) and by the playbooks' pre-step on the clients (which prepends every node's
endpoints to the host's ``gpulab_mirrors`` before ``mirror_select`` probes it).

A cache node's settings are read from its host variables ``cache_node_*``; the defaults below are
the role's defaults (``roles/cache_node/defaults/main.yml``, a unit test keeps them equal), because
a client reads another host's variables, where role defaults do not exist.
"""

from __future__ import annotations

import copy
import ipaddress
import re

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import (
    MirrorUrlError,
    basic_auth_value,
    mask_url,
    parse_mirror_url,
    split_credentials,
)

SERVICES = ("pypi", "conda", "docker")

DEFAULTS = {
    "services": ["pypi", "conda", "docker"],
    "listen_address": "0.0.0.0",
    "advertise_address": "",
    "pypi_port": 3141,
    "conda_port": 8088,
    "registries": [{"name": "docker.io", "port": 5000}],
    "tls_cert": "",
    "tls_key": "",
    "registry_blob_cache": True,
    "registry_blob_cache_address": "127.0.0.1",
}

# Settings only the node's own role reads (they reach its nginx.conf, devpi's unit, the registries'
# files): the role checks them (``node_settings(..., role=True)``); a client, which reads a node's
# host variables for its endpoints only, neither fills nor checks them. The role's defaults too.
ROLE_DEFAULTS = {
    "data_dir": "/var/lib/gpulab-cache",
    "wheelhouse": "",
    "devpi_packages": ["devpi-server"],
    "devpi_venv": "/opt/gpulab-cache/devpi",
    "pypi_backend_port": 3140,
    "pypi_cache_expiry_s": 1800,
    "pypi_page_valid": "1m",
    "pypi_fetch_max_size": "20g",
    "pypi_upstream": "",
    "conda_upstream": "",
    "conda_max_size": "50g",
    "conda_repodata_valid": "10m",
    "conda_package_valid": "365d",
    "conda_inactive": "90d",
    "registry_recheck_s": 60,
    "registry_blob_max_size": "20g",
    "registry_blob_inactive": "30d",
    "registry_blob_lock_timeout": "1h",
    "registry_ca_file": "/etc/ssl/certs/ca-certificates.crt",
    "metrics_interval": "1min",
    "registry_metrics_port": 5200,
}

# What each value may look like where the format cannot quote it (nginx reads ';', '{', '}', '#',
# '$' and white space as syntax; systemd's ExecStart splits at spaces and expands '%'; YAML plain
# scalars end at ': ' and ' #'). Sizes and times: nginx's own syntax, one number and one unit.
# Always fullmatch: a pattern's '$' also matches before a trailing newline.
_NGINX_SIZE = re.compile(r"^[0-9]{1,12}[kKmMgG]?$")
_NGINX_TIME = re.compile(r"^[0-9]{1,9}[smhdwMy]?$")
_PATH = re.compile(r"^/[A-Za-z0-9._+@,=~/-]{0,4095}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A systemd time span as the metrics timer's OnUnitActiveSec= reads it: one number, one unit.
_SYSTEMD_SPAN = re.compile(r"^[0-9]{1,9}(us|ms|s|sec|m|min|h|hr|d)?$")
_SIZES = ("pypi_fetch_max_size", "conda_max_size", "registry_blob_max_size")
_TIMES = ("pypi_page_valid", "conda_repodata_valid", "conda_package_valid", "conda_inactive", "registry_blob_inactive",
          "registry_blob_lock_timeout")
_PATHS = ("data_dir", "devpi_venv", "registry_ca_file")
# (key, lowest value) of whole-second settings
_SECONDS = (("pypi_cache_expiry_s", 0), ("registry_recheck_s", 1))
_MAX_SECONDS = 2 ** 31 - 1
# Characters an upstream's path may not hold where nginx writes it (rewrite ^ <path>$uri): ';' ends
# the directive, '$' starts a variable. Percent-encoded (%3B, %24) they reach the upstream the same.
_NGINX_PATH_SPECIAL = {";": "%3B", "$": "%24"}

# A registry's blob cache (nginx between the registry proxy and its upstream) listens on this
# many ports above the registry's own port unless the entry names ``cache_port``.
BLOB_CACHE_PORT_OFFSET = 100

# Where a registry's upstream is when neither the entry nor (for docker.io) the node's chosen
# Docker Hub mirror says otherwise.
DEFAULT_UPSTREAMS = {"docker.io": "https://registry-1.docker.io"}

ENTRY_PREFIX = "cache-"
_HOSTNAME = re.compile(r"(?i)^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_WILDCARDS = ("0.0.0.0", "::", "")


class CacheNodeError(ValueError):
    """Settings of a cache node that cannot be used; the message names the variable."""


def node_settings(node_vars, hostname, role=False):
    """The ``cache_node_*`` settings of one node, defaults filled in, plus ``host`` (its inventory name).

    ``node_vars`` is the node's ``hostvars`` entry (or the role's own variables); keys other than
    ``cache_node_*``, ``ansible_host`` and ``inventory_hostname`` are ignored. ``role``: the role's
    own settings too (:data:`ROLE_DEFAULTS`), which :func:`node_errors` then checks as well, and
    ``metrics_dir`` (``gpulab_metrics_dir``; "" = metrics off: the registries' debug servers take no port).
    """
    node_vars = node_vars or {}
    settings = {"host": hostname}
    for key, default in list(DEFAULTS.items()) + (list(ROLE_DEFAULTS.items()) if role else []):
        value = node_vars.get("cache_node_" + key)
        settings[key] = copy.deepcopy(default) if value is None else value
    settings["ansible_host"] = node_vars.get("ansible_host") or ""
    if role:
        settings["metrics_dir"] = node_vars.get("gpulab_metrics_dir") or ""
    return settings


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _port_errors(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return ["%s: %r is not a TCP port (1-65535)" % (name, value)]
    return []


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _path_error(key, value, optional=False):
    if optional and value == "":
        return []
    if not isinstance(value, str) or not _PATH.fullmatch(value):
        return ["cache_node_%s: %r is not an absolute path the role can write into a configuration file; use"
                " letters, digits and . _ - + @ , = ~ / only (no space, quote, ';', '{', '}', '$', '%%' or"
                " newline), like %s" % (key, value, ROLE_DEFAULTS.get(key, "/etc/ssl/lab/cache.pem"))]
    return []


def _url_error(key, value, conda=False):
    """A problem with an upstream override (empty: the node's chosen mirror), or None."""
    if value == "":
        return None
    try:
        if conda:
            http_upstream(value, "cache_node_" + key)
        elif not isinstance(value, str):
            raise MirrorUrlError("url must be a non-empty string like https://mirror.example/simple")
        else:
            parse_mirror_url(value, insecure=True)
    except MirrorUrlError as exc:
        return "cache_node_%s: %s" % (key, exc)
    except CacheNodeError as exc:
        return str(exc)
    return None


def _role_errors(settings):
    """Problems in the settings only the node's role reads (present when node_settings had role=True)."""
    errors = []
    for key in _SIZES:
        value = settings[key]
        if not (_is_int(value) and value >= 0) and not (isinstance(value, str) and _NGINX_SIZE.fullmatch(value)):
            errors.append("cache_node_%s: %r is not an nginx size; use a number with an optional unit k, m or g,"
                          " like %s" % (key, value, ROLE_DEFAULTS[key]))
    for key in _TIMES:
        value = settings[key]
        if not (_is_int(value) and 0 <= value < 10 ** 9) and not (isinstance(value, str) and _NGINX_TIME.fullmatch(value)):
            errors.append("cache_node_%s: %r is not an nginx time; use a number with an optional unit s, m, h, d,"
                          " w, M or y, like %s" % (key, value, ROLE_DEFAULTS[key]))
    for key in _PATHS:
        errors.extend(_path_error(key, settings[key]))
    for key, lowest in _SECONDS:
        value = settings[key]
        if not _is_int(value) or not lowest <= value <= _MAX_SECONDS:
            errors.append("cache_node_%s: %r is not a whole number of seconds (%d-%d)"
                          % (key, value, lowest, _MAX_SECONDS))
    errors.extend(_port_errors("cache_node_pypi_backend_port", settings["pypi_backend_port"]))
    interval = settings["metrics_interval"]
    if not isinstance(interval, str) or not _SYSTEMD_SPAN.fullmatch(interval):
        errors.append("cache_node_metrics_interval: %r is not a systemd time span; use a number with an optional"
                      " unit s, min or h, like 30s, 1min or 5min" % (interval,))
    for key, conda in (("pypi_upstream", False), ("conda_upstream", True)):
        error = _url_error(key, settings[key], conda)
        if error:
            errors.append(error)
    wheelhouse = settings["wheelhouse"]
    if not isinstance(wheelhouse, str) or _CONTROL.search(wheelhouse):
        errors.append("cache_node_wheelhouse: %r must be a directory on the controller (a path without control"
                      " characters), or empty" % (wheelhouse,))
    packages = settings["devpi_packages"]
    if (not isinstance(packages, list) or not packages
            or any(not isinstance(p, str) or not p.strip() or p.lstrip().startswith("-") or _CONTROL.search(p)
                   for p in packages)):
        errors.append("cache_node_devpi_packages: %r must be a non-empty list of pip requirements like"
                      " devpi-server==6.20.3 (no options, no control characters)" % (packages,))
    return errors


def node_errors(settings):
    """Every problem in one node's settings, as messages naming the variable and the fix.

    The one check of a node's settings: the role runs it (with its own settings, see
    :func:`node_settings`) before anything is installed or written, the clients through
    :func:`checked_nodes`. A value that reaches a service's configuration file is checked by type and
    pattern here, so nothing the format reads as syntax (nginx's ';', '{', '}') gets there.
    """
    errors = []
    services = settings["services"]
    if not isinstance(services, list) or any(s not in SERVICES for s in services):
        errors.append("cache_node_services: %r; use a list drawn from %s" % (services, ", ".join(SERVICES)))
        services = []
    for key in ("listen_address", "advertise_address"):
        value = settings[key]
        if not isinstance(value, str) or (value not in _WILDCARDS and not _is_ip(value) and not _HOSTNAME.fullmatch(value)):
            errors.append("cache_node_%s: %r is not an IP address or host name" % (key, value))
        elif key == "listen_address" and value == "":
            errors.append("cache_node_listen_address: '' is no address to listen on; use 0.0.0.0 (every IPv4"
                          " address), :: (every address) or one of the node's addresses")
    for key in ("tls_cert", "tls_key"):
        errors.extend(_path_error(key, settings[key], optional=True))
    if "data_dir" in settings:
        errors.extend(_role_errors(settings))
    blob_cache = settings["registry_blob_cache"]
    if not isinstance(blob_cache, bool):
        errors.append("cache_node_registry_blob_cache: %r must be true or false" % (blob_cache,))
        blob_cache = False
    blob_address = settings["registry_blob_cache_address"]
    if blob_cache and "docker" in (services or []) and (not isinstance(blob_address, str) or not _is_ip(blob_address)
                                                        or blob_address in _WILDCARDS):
        errors.append("cache_node_registry_blob_cache_address: %r must be one IP address of the node (loopback:"
                      " 127.0.0.1), where each registry proxy reaches its blob cache" % (blob_address,))
    if bool(settings["tls_cert"]) != bool(settings["tls_key"]):
        errors.append("cache_node_tls_cert and cache_node_tls_key: set both (a PEM certificate and its key) or neither")
    ports = []
    if "pypi" in services:
        errors.extend(_port_errors("cache_node_pypi_port", settings["pypi_port"]))
        ports.append(("cache_node_pypi_port", settings["pypi_port"]))
        if "pypi_backend_port" in settings:
            # devpi itself, behind nginx (on the node's own address, where the blob caches may be too)
            ports.append(("cache_node_pypi_backend_port", settings["pypi_backend_port"]))
    if "conda" in services:
        errors.extend(_port_errors("cache_node_conda_port", settings["conda_port"]))
        ports.append(("cache_node_conda_port", settings["conda_port"]))
    registries = settings["registries"]
    if "docker" in services:
        if not isinstance(registries, list) or not registries:
            errors.append("cache_node_registries: must be a non-empty list of {name, port[, upstream]}"
                          " (or leave docker out of cache_node_services)")
            registries = []
        seen = set()
        for index, entry in enumerate(registries):
            here = "cache_node_registries[%d]" % index
            if not isinstance(entry, dict):
                errors.append("%s: must be a mapping like {name: docker.io, port: 5000}" % here)
                continue
            unknown = sorted(set(entry) - {"name", "port", "upstream", "cache_port"})
            if unknown:
                errors.append("%s: unknown key(s) %s; allowed: name, port, upstream, cache_port"
                              % (here, ", ".join(unknown)))
            name = entry.get("name")
            if not isinstance(name, str) or not _HOSTNAME.fullmatch(name) or "." not in name:
                errors.append("%s.name: %r is not a registry host name (e.g. docker.io, ghcr.io, nvcr.io)"
                              % (here, name))
            elif name in seen:
                errors.append("%s.name: %r is listed twice" % (here, name))
            else:
                seen.add(name)
            errors.extend(_port_errors(here + ".port", entry.get("port")))
            ports.append((here + ".port", entry.get("port")))
            if blob_cache:
                cache_port = blob_cache_port(entry)
                if "cache_port" in entry or not _port_errors("", entry.get("port")):
                    errors.extend(_port_errors(here + ".cache_port", cache_port))
                    ports.append((here + ".cache_port", cache_port))
            upstream = entry.get("upstream")
            if upstream:
                try:
                    registry_upstream(entry, None)
                except CacheNodeError as exc:
                    errors.append(str(exc))
    if "docker" in services and "registry_metrics_port" in settings:
        ports.extend(_debug_ports(settings, errors))
    by_port = {}
    for name, port in ports:
        if isinstance(port, int) and not isinstance(port, bool):
            by_port.setdefault(port, []).append(name)
    for port, names in sorted(by_port.items()):
        if len(names) > 1:
            errors.append("port collision: %s all use port %d; give each service its own port"
                          % (" and ".join(names), port))
    return errors


def _debug_ports(settings, errors):
    """(name, port) of each registry's debug server (gpulab-cache-metrics reads its counts there):
    ``registry_metrics_port`` + the registry's index, where metrics are on; a bad base port is an error."""
    registries = settings["registries"] if isinstance(settings["registries"], list) else []
    base = settings["registry_metrics_port"]
    if not settings.get("metrics_dir") or not registries:
        return []
    if not _is_int(base) or not 1 <= base or base + len(registries) - 1 > 65535:
        errors.append("cache_node_registry_metrics_port: %r is not a TCP port (1-65535) with one more port free"
                      " above it for each further registry" % (base,))
        return []
    return [("cache_node_registry_metrics_port (the debug server of cache_node_registries[%d])" % index, base + index)
            for index in range(len(registries))]


def blob_cache_port(entry):
    """The port of a registry's blob cache: the entry's ``cache_port``, else its port + 100."""
    if "cache_port" in entry:
        return entry["cache_port"]
    port = entry.get("port")
    if isinstance(port, bool) or not isinstance(port, int):
        return None
    return port + BLOB_CACHE_PORT_OFFSET


def advertised_host(settings):
    """The address clients use: advertise_address, else a specific listen address, else ansible_host/host."""
    host = settings["advertise_address"] or ""
    if not host and settings["listen_address"] not in _WILDCARDS:
        host = settings["listen_address"]
    host = host or settings.get("ansible_host") or settings["host"]
    if ":" in host:
        host = "[%s]" % host
    return host


def registry_upstream(entry, docker_selected):
    """``(url, username, password)`` of a registry's upstream, credentials split off.

    docker.io: the entry's ``upstream``, else the node's chosen Docker Hub mirror
    (``gpulab_mirrors_selected.docker`` when it has a URL), else Docker Hub. Others: ``upstream``, else
    ``https://<name>``. The URL must be ``scheme://host[:port]`` without a path (the registry proxy
    appends ``/v2/``).
    """
    name = entry.get("name")
    where = "cache_node_registries[name=%s].upstream" % name
    url = entry.get("upstream")
    if not url and name == "docker.io" and isinstance(docker_selected, dict) and docker_selected.get("url"):
        url = docker_selected["url"]
        where = "gpulab_mirrors_selected.docker.url (the node's chosen Docker Hub mirror)"
    if not url:
        url = DEFAULT_UPSTREAMS.get(name, "https://%s" % name)
    if not isinstance(url, str):
        raise CacheNodeError("%s: %r must be a URL like https://registry.example" % (where, url))
    bare, username, password = split_credentials(url)
    try:
        parsed = parse_mirror_url(bare, kind="docker", insecure=True)
    except MirrorUrlError as exc:
        raise CacheNodeError("%s: %s (a registry upstream is scheme://host[:port], no path)" % (where, exc)) from exc
    return parsed.url.rstrip("/"), username, password


def registry_instances(settings, docker_selected=None):
    """One dict per registry the node proxies. Raise :class:`CacheNodeError` on bad settings.

    ``name``, ``slug``, ``port``, ``upstream`` (no credentials), ``username``, ``password``, ``unit``;
    ``remote``: what the registry proxy is given as ``proxy.remoteurl``: its blob cache
    (``http://<registry_blob_cache_address>:<cache_port>``, nginx, which forwards to the upstream)
    when ``registry_blob_cache`` is on, else the upstream itself; ``cache_port`` (None without the
    blob cache), ``cache_listen`` (nginx's ``listen`` value), and for nginx ``origin``
    (``scheme://host[:port]``), ``host_header`` and ``tls_name`` (the name the upstream's
    certificate is checked against).
    """
    if "docker" not in settings["services"]:
        return []
    errors = node_errors(settings)
    if errors:
        raise CacheNodeError("; ".join(errors))
    out = []
    for entry in settings["registries"]:
        url, username, password = registry_upstream(entry, docker_selected)
        slug = entry["name"].replace(".", "-").lower()
        parts = http_upstream(url, "cache_node_registries[name=%s].upstream" % entry["name"])
        instance = {"name": entry["name"], "slug": slug, "port": entry["port"], "upstream": url,
                    "username": username, "password": password,
                    "unit": "gpulab-cache-registry-%s.service" % slug,
                    "origin": parts["origin"], "host_header": parts["host_header"],
                    "tls_name": parse_mirror_url(url, kind="docker", insecure=True).host,
                    "cache_port": None, "cache_listen": None, "remote": url}
        if settings["registry_blob_cache"]:
            address = settings["registry_blob_cache_address"]
            host = "[%s]" % address if ":" in address else address
            port = blob_cache_port(entry)
            instance.update(cache_port=port, cache_listen="%s:%d" % (host, port), remote="http://%s:%d" % (host, port))
        out.append(instance)
    return out


def node_endpoints(settings):
    """What one node serves, as catalog entries per service, and every registry's URL.

    ``{"pypi": {...}, "conda": {...}, "docker": {...}, "registries": {name: url}}``; a service the
    node does not serve is absent. ``docker`` is the docker.io proxy (what ``registry-mirrors``
    takes). Without TLS the entries are ``insecure: true`` (plain HTTP).
    """
    services = settings["services"]
    tls = bool(settings["tls_cert"])
    scheme = "https" if tls else "http"
    host = advertised_host(settings)
    name = ENTRY_PREFIX + str(settings["host"])
    out = {}

    def entry(port, path=""):
        return {"name": name, "url": "%s://%s:%d%s" % (scheme, host, port, path), "insecure": not tls,
                "proxy": False}  # inside the lab: never through gpulab_proxy

    if "pypi" in services:
        out["pypi"] = entry(settings["pypi_port"], "/root/pypi/+simple")
    if "conda" in services:
        out["conda"] = entry(settings["conda_port"])
    if "docker" in services:
        registries = {}
        for reg in settings["registries"]:
            registries[reg["name"]] = entry(reg["port"])["url"]
            if reg["name"] == "docker.io":
                out["docker"] = entry(reg["port"])
        out["registries"] = registries
    return out


def checked_nodes(nodes):
    """``[(hostname, settings)]`` of ``[(hostname, node_vars)]``; a node with bad settings raises
    :class:`CacheNodeError` naming it and every problem, and so do two nodes that advertise one
    address (clients would count one machine as two cache nodes)."""
    out, advertised = [], {}
    for hostname, node_vars in nodes:
        settings = node_settings(node_vars, hostname)
        errors = node_errors(settings)
        if errors:
            raise CacheNodeError("cache node %s: %s" % (hostname, "; ".join(errors)))
        host = advertised_host(settings).lower()
        if host in advertised:
            raise CacheNodeError(
                "cache nodes %s and %s both advertise %s (cache_node_advertise_address, else a specific"
                " cache_node_listen_address, else ansible_host, else the inventory name): clients would take one"
                " machine for two cache nodes; give each node its own cache_node_advertise_address"
                % (advertised[host], hostname, host))
        advertised[host] = hostname
        out.append((hostname, settings))
    return out


def prefer_nodes(names, prefer):
    """The cache node names in the order a host prefers them: ``prefer`` (``gpulab_cache_prefer``, the
    nearest first) in its order, then the others in group order. An unknown name raises, naming it."""
    if prefer in (None, ""):
        return list(names)
    if not isinstance(prefer, list) or any(not isinstance(name, str) for name in prefer):
        raise CacheNodeError("gpulab_cache_prefer: %r must be a list of cache node names (inventory names in"
                             " gpulab_cache_nodes), the nearest first" % (prefer,))
    unknown = [name for name in prefer if name not in names]
    if unknown:
        raise CacheNodeError("gpulab_cache_prefer: %s not in gpulab_cache_nodes (%s)"
                             % (", ".join(repr(name) for name in unknown), ", ".join(names) or "none"))
    first = list(dict.fromkeys(prefer))
    return first + [name for name in names if name not in first]


def cache_catalog(catalog, nodes, host=None, use=True):
    """The client's catalog with each cache node's endpoints first, per service.

    ``catalog``: the host's ``gpulab_mirrors``. ``nodes``: ``[(hostname, node_vars), ...]`` in group
    order. ``host``: this host's inventory name (a cache node's own catalog is left alone: its
    upstreams are the public mirrors). ``use``: ``gpulab_cache_use`` (false leaves the catalog alone).

    Only services already in the catalog get the cache (a host that has no conda catalog is not
    given one). Entries whose name is already in the catalog are not added again, so applying the
    function twice gives the same catalog. Nodes with bad settings raise :class:`CacheNodeError`.
    """
    if not isinstance(catalog, dict):
        raise CacheNodeError("gpulab_mirrors: must be a mapping of service -> list of mirrors")
    if not isinstance(use, bool):
        raise CacheNodeError("gpulab_cache_use: %r must be true or false" % (use,))
    names = [hostname for hostname, _vars in nodes]
    if not use or host in names:
        return catalog
    result = dict(catalog)
    prepend = {}
    for _hostname, settings in checked_nodes(nodes):
        for service, entry in node_endpoints(settings).items():
            if service in SERVICES:
                prepend.setdefault(service, []).append(entry)
    for service, entries in prepend.items():
        current = catalog.get(service)
        if not isinstance(current, list):
            continue
        present = {e.get("name") for e in current if isinstance(e, dict)}
        new = [e for e in entries if e["name"] not in present]
        if new:
            result[service] = new + list(current)
    return result


def http_upstream(url, variable="cache_node_conda_upstream"):
    """Split an HTTP(S) upstream for a reverse proxy: ``{origin, path, host_header, authorization}``.

    ``origin`` is ``scheme://host[:port]`` (what nginx's ``proxy_pass`` takes), ``path`` the base path
    without a trailing slash (prefixed to every request), ``authorization`` a ``Basic ...`` header
    value when the URL carries credentials, else None.
    """
    if not isinstance(url, str):
        raise CacheNodeError("%s: %r must be a URL like https://mirror.example/anaconda" % (variable, url))
    try:
        parse_mirror_url(url, insecure=True)  # first: the whole URL's characters, no raw text in the message
        bare, username, password = split_credentials(url)
        parsed = parse_mirror_url(bare, insecure=True)
    except MirrorUrlError as exc:
        raise CacheNodeError("%s: %s" % (variable, exc)) from exc
    for char, encoded in _NGINX_PATH_SPECIAL.items():
        if char in (parsed.path or ""):
            raise CacheNodeError("%s: url %r has %r in its path, which nginx reads as syntax where it writes the"
                                 " path; percent-encode it as %s" % (variable, mask_url(url), char, encoded))
    default_port = 443 if parsed.scheme == "https" else 80
    host = "[%s]" % parsed.host if ":" in parsed.host else parsed.host
    hostport = host if (parsed.port or default_port) == default_port else "%s:%d" % (host, parsed.port)
    authorization = None
    if username is not None:
        authorization = basic_auth_value(username, password or "")
    return {"origin": "%s://%s" % (parsed.scheme, hostport), "path": (parsed.path or "").rstrip("/"),
            "host_header": hostport, "authorization": authorization}
