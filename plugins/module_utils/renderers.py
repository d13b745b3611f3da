# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What reaches a client's configuration file: one pure renderer per client.

Each renderer takes ``(current file text, the service's selection, the role's options)`` and
returns ``{"content": new text, "changed": bool, "summary": {...}}``. Roles only read the file,
call the ``gpulab.provision.render_client_config`` filter and write ``content``. Everything that
decides what a file says lives here, with unit tests: the URL a client is given (parsed by
:func:`mirror_url.parse_mirror_url`, the same model the probe uses), pip's trusted-host list, the
uv index table, conda's channel URLs, dockerd's registry-mirrors and insecure-registries,
containerd's hosts.toml.

Promises:

* A selection whose status is ``kept`` or ``none`` (every mirror down) leaves every file byte for
  byte as it is: the last good configuration stays; a missing file stays missing. daemon.json is
  the exception by design: its mirror keys stay as they are, while other roles' fragments,
  ``live-restore`` and the user's keys are still merged (a fresh GPU host gets the nvidia runtime
  on an outage day too).
* Every renderer returns one summary shape, whatever the status and whether the file exists:
  every key of :data:`SUMMARY_DEFAULTS` and of the client's :data:`CLIENT_SUMMARY` is present,
  so roles read them without ``default()`` (:func:`summary_shape`).
* Each format is written with its own escaping (INI by line, TOML basic strings, YAML and JSON by
  their dumpers), never by pasting strings, and the result is parsed back and checked before it
  is returned: a renderer never hands back a file its client could not read.
* The summary holds no credentials: ``sensitive`` tells the role to keep the text out of the
  output (no_log, no diff) when the old or the new file carries a credential.
"""

from __future__ import annotations

import copy
import re

from urllib.parse import urlsplit

from ansible_collections.gpulab.provision.plugins.module_utils import config_merge
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import (
    MirrorUrlError,
    mask_url,
    parse_mirror_url,
)
from ansible_collections.gpulab.provision.plugins.module_utils.proxy import proxy_environment, proxy_for

try:
    import tomllib
except ImportError:  # pragma: no cover - Python < 3.11 on the controller: the TOML check is skipped
    tomllib = None

ACTIVE = ("ok", "pinned", "pin_unhealthy")
CLIENTS = ("pip_conf", "uv_toml", "condarc", "daemon_json", "hosts_toml", "docker_proxy")
UV_MARKER = "gpulab.provision pip_mirror: default index"
HUB = "https://registry-1.docker.io"

# The summary every renderer returns, for every status (a role reads these keys without default()).
# client, path; action: render | untouched | mirrors untouched | remove | absent; status: the selection's;
# mirror; url_masked: the chosen mirror, masked; reason; warnings; changed; holds_credentials /
# sensitive (see _result); needs: none | reload | restart (what dockerd needs to apply it; none for files
# dockerd does not read); changed_keys: the daemon.json keys that change ([] for other files); present:
# whether the file existed (the current text was not None).
SUMMARY_DEFAULTS = {
    "client": None, "path": None, "action": "untouched", "status": "none", "mirror": None, "url_masked": None,
    "reason": "", "warnings": [], "changed": False, "holds_credentials": False, "sensitive": False,
    "needs": "none", "changed_keys": [], "present": True,
}
# And each client's own keys, present for every status too.
CLIENT_SUMMARY = {
    "pip_conf": {"trusted_host": [], "extra_index_url": False, "proxy": None},
    "uv_toml": {},
    "condarc": {"channel_alias": None, "default_channels": [], "custom_channels": []},
    "daemon_json": {"registry_mirrors": []},
    "hosts_toml": {"hosts": [], "registry": None},
    "docker_proxy": {"proxy": {}},
}

# A URL with userinfo, or a query key that holds a secret, anywhere in a file's text.
_CREDENTIAL_IN_TEXT = re.compile(
    r"(?i)[a-z][a-z0-9+.-]*://[^\s/'\"<>]*@|[?&][a-z0-9_.-]*(token|auth|pass|pwd|secret|key|sig|cred|session)[a-z0-9_.-]*=")


class RenderError(ValueError):
    """A selection or option that cannot be rendered; the message names the variable and the fix."""


def holds_credentials(text):
    """True when ``text`` carries a URL with a user/password or a secret-looking query parameter."""
    return bool(_CREDENTIAL_IN_TEXT.search(text or ""))


def _status(selection):
    if selection is None:
        return "none"
    if not isinstance(selection, dict):
        raise RenderError("the selection must be one service's entry of gpulab_mirrors_selected (a mapping)")
    return selection.get("status") or "none"


def _parse(url, kind, insecure, where):
    try:
        return parse_mirror_url(url, kind=kind, insecure=insecure)
    except MirrorUrlError as exc:
        raise RenderError("%s: %s; fix the entry in gpulab_mirrors and re-run mirror_select" % (where, exc))


def _chosen(selection, kind, service):
    name = selection.get("name")
    return _parse(selection.get("url"), kind, bool(selection.get("insecure")),
                  "gpulab_mirrors.%s mirror %r" % (service, name))


def _known_hostports(selection):
    """host and host:port of every mirror the selection knows (entries for them are ours)."""
    known = set()
    entries = list(selection.get("ranked") or []) + list(selection.get("rejected") or []) + [selection]
    for entry in entries:
        url = entry.get("url_masked") or entry.get("url")
        if not isinstance(url, str) or not url:
            continue
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            continue
        hostport = parts.netloc.rsplit("@", 1)[-1]
        if parts.hostname:
            known.add(hostport.lower())
            host = parts.hostname.lower()
            known.add("[%s]" % host if ":" in host else host)
            known.add(host)
            if port:
                # the form an earlier release wrote for IPv6 (without brackets), so it is cleaned up
                known.add("%s:%s" % (host, port))
    return known


def summary_shape(client, values=None):
    """The summary of ``client`` with every key present: the defaults, then ``values``."""
    summary = copy.deepcopy(SUMMARY_DEFAULTS)
    summary.update(copy.deepcopy(CLIENT_SUMMARY.get(client, {})))
    summary["client"] = client
    summary.update(values or {})
    if summary["warnings"] is None:
        summary["warnings"] = []
    return summary


def _result(current, content, summary, sensitive=False):
    current = current or ""
    changed = content != current
    summary = summary_shape(summary["client"], summary)
    summary["changed"] = changed
    # holds_credentials: the new file carries a secret (the role narrows its mode); sensitive: the old
    # or the new one does (never print either).
    summary["holds_credentials"] = bool(sensitive or holds_credentials(content))
    summary["sensitive"] = bool(summary["holds_credentials"] or holds_credentials(current))
    return {"content": content, "changed": changed, "summary": summary}


def _untouched(current, selection, client, path, **values):
    """The file left byte for byte as it is (a missing one stays missing), with the whole summary."""
    status = _status(selection)
    left = "left as it is" if current else "left missing"
    why = {"kept": "every mirror down: the last good configuration is kept (%s)" % left,
           "none": "no healthy mirror and none to keep: the file is %s" % left}.get(
        status, "status %s: the file is %s" % (status, left))
    return _result(current, current or "", dict(values, **{
        "client": client, "path": path, "action": "untouched", "status": status,
        "mirror": (selection or {}).get("name"), "reason": why,
        "warnings": ["%s: %s" % (path, why)] if status != "kept" else []}))


def _opt(options, key, default=None):
    value = (options or {}).get(key, default)
    return default if value is None else value


# --------------------------------------------------------------------------------------------------
# pip.conf


def render_pip_conf(current, selection, options=None):
    """pip.conf: ``index-url`` = the chosen mirror, ``trusted-host`` only for an insecure choice.

    Options: ``path``, ``service`` (for messages), ``timeout``, ``retries``, ``proxy`` (the
    ``gpulab_proxy`` settings from :func:`proxy.proxy_settings`: pip's ``proxy`` is set when the
    chosen mirror goes through it and removed when it is reached directly; absent, the key is left
    as it is). ``trusted-host`` entries
    of other catalogued mirrors are dropped, the user's own are kept; IPv6 hosts are written
    ``[addr]:port`` as pip matches them. An existing ``extra-index-url`` is kept (it is the user's)
    and reported: pip treats it as an equal peer, not a fallback.
    """
    path = _opt(options, "path", "/etc/pip.conf")
    service = _opt(options, "service", "pypi")
    if _status(selection) not in ACTIVE:
        return _untouched(current, selection, "pip_conf", path)
    chosen = _chosen(selection, "pypi", service)
    parsed = config_merge.pip_conf_parse(current, path).get("global", {})
    known = _known_hostports(selection)
    trusted = [h for h in (parsed.get("trusted-host") or "").split() if h.lower() not in known]
    if chosen.insecure and chosen.hostport not in trusted:
        trusted.append(chosen.hostport)
    settings = {"index-url": chosen.url, "trusted-host": trusted or None}
    for key in ("timeout", "retries"):
        value = _opt(options, key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RenderError("pip_mirror_%s: %r must be a whole number >= 0" % (key, value))
            settings[key] = value
    if "proxy" in (options or {}):
        settings["proxy"] = proxy_for(chosen.url, options["proxy"])
    content = config_merge.pip_conf_merge(current, settings, path=path)
    # Read it back the way pip will: the index and the trust must be exactly what was meant.
    check = config_merge.pip_conf_parse(content, path).get("global", {})
    if check.get("index-url") != chosen.url or (check.get("trusted-host") or "").split() != trusted:
        raise RenderError("%s: the rendered file does not read back as written; nothing was written" % path)
    warnings = []
    if "extra-index-url" in parsed:
        warnings.append("extra-index-url present in %s: pip treats it as an equal peer of index-url, not a "
                        "fallback (dependency confusion, CVE-2018-20225); remove it unless you mean it" % path)
    return _result(current, content, {
        "client": "pip_conf", "path": path, "action": "render", "status": _status(selection),
        "mirror": selection.get("name"), "url_masked": chosen.masked,
        "trusted_host": trusted, "extra_index_url": "extra-index-url" in parsed,
        "proxy": mask_url(settings["proxy"]) if settings.get("proxy") else None,
        "reason": "index-url -> %s" % chosen.masked, "warnings": warnings}, chosen.has_credentials)


# --------------------------------------------------------------------------------------------------
# uv.toml


def toml_string(value):
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for char in str(value):
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 32 or ord(char) == 127:
            out.append("\\u%04x" % ord(char))
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _toml_load(text, path):
    if tomllib is None:  # pragma: no cover
        return None
    try:
        return tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        raise config_merge.ConfigMergeError(
            "%s is not valid TOML (%s), so its client cannot read it either. Fix or remove it, then re-run; the "
            "file was left untouched." % (path, exc))


def _replace_block(current, marker, block_lines):
    """Replace (or append) a ``# BEGIN marker`` ... ``# END marker`` block, as blockinfile does."""
    begin, end = "# BEGIN %s" % marker, "# END %s" % marker
    lines = (current or "").splitlines()
    new_block = [begin] + block_lines + [end]
    if begin in lines and end in lines and lines.index(begin) < lines.index(end):
        start, stop = lines.index(begin), lines.index(end)
        lines[start:stop + 1] = new_block
    else:
        lines.extend(new_block)
    return "\n".join(lines) + "\n"


def render_uv_toml(current, selection, options=None):
    """uv.toml: the chosen mirror as uv's default ``[[index]]``, in a marked block at the end.

    A TOML table header cannot swallow the user's top-level keys from the end of the file. The
    URL is a TOML basic string; the result is parsed back (tomllib) before it is returned.
    """
    path = _opt(options, "path", "/etc/uv/uv.toml")
    service = _opt(options, "service", "pypi")
    if _status(selection) not in ACTIVE:
        return _untouched(current, selection, "uv_toml", path)
    chosen = _chosen(selection, "pypi", service)
    _toml_load(current, path)
    content = _replace_block(current, UV_MARKER, ["[[index]]", "url = %s" % toml_string(chosen.url), "default = true"])
    data = _toml_load(content, path)
    if data is not None:
        defaults = [i for i in data.get("index", []) if isinstance(i, dict) and i.get("default") is True]
        if not defaults or defaults[-1].get("url") != chosen.url:
            raise RenderError("%s: the rendered file does not read back as written; nothing was written" % path)
    return _result(current, content, {
        "client": "uv_toml", "path": path, "action": "render", "status": _status(selection),
        "mirror": selection.get("name"), "url_masked": chosen.masked,
        "reason": "default index -> %s" % chosen.masked}, chosen.has_credentials)


# --------------------------------------------------------------------------------------------------
# .condarc


def _catalog_entry(options, name):
    for entry in _opt(options, "catalog", []) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return {}


_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _channel_names(names, variable):
    """``names`` as given, each checked to be a conda channel name (``variable`` names the option)."""
    for name in names:
        if not isinstance(name, str) or not _CHANNEL_NAME.match(name):
            raise RenderError("%s: %r is not a channel name" % (variable, name))
    return list(names)


def render_condarc(current, selection, options=None):
    """.condarc: ``channel_alias``, ``default_channels`` and ``custom_channels`` from the mirror, and
    ``channels: [defaults]`` when the file names no ``channels`` (conda >= 25.9 implies none).

    Layout: TUNA/BFSU-style ``<url>/pkgs/<channel>`` for the default channels and ``<url>/cloud``
    for community channels, unless the catalog entry (options ``catalog``: the service's list in
    gpulab_mirrors) gives its own ``channel_alias``, ``default_channels`` or ``custom_channels``.
    Options: ``path``, ``service``, ``custom_channels`` (names routed to the alias),
    ``default_channels`` (names under pkgs/), ``show_channel_urls``, ``proxy`` (as for pip:
    ``proxy_servers`` set for a proxied mirror, removed for a direct one, untouched when absent).
    """
    path = _opt(options, "path", "/opt/conda/.condarc")
    service = _opt(options, "service", "conda")
    if _status(selection) not in ACTIVE:
        return _untouched(current, selection, "condarc", path)
    chosen = _chosen(selection, "conda", service)
    insecure = chosen.insecure
    entry = _catalog_entry(options, selection.get("name"))
    where = "gpulab_mirrors.%s mirror %r" % (service, selection.get("name"))
    base = chosen.url.rstrip("/")
    alias = entry.get("channel_alias")
    alias = _parse(alias, "conda", insecure, where + " channel_alias").url if alias else base + "/cloud"
    if entry.get("default_channels"):
        defaults = [_parse(url, "conda", insecure, where + " default_channels").url for url in entry["default_channels"]]
    else:
        defaults = [base + "/pkgs/" + name for name in
                    _channel_names(_opt(options, "default_channels", ["main", "r"]), "conda_mirror_default_channels")]
    if entry.get("custom_channels"):
        custom = {name: _parse(url, "conda", insecure, where + " custom_channels." + str(name)).url
                  for name, url in entry["custom_channels"].items()}
    else:
        custom = {name: alias for name in
                  _channel_names(_opt(options, "custom_channels", []), "conda_mirror_custom_channels")}
    settings = {"channel_alias": alias, "default_channels": defaults, "custom_channels": custom}
    # conda >= 25.9 no longer implies ``defaults`` when no ``channels`` are set (NoChannelsConfiguredError),
    # so default_channels alone would point at the mirror and install nothing. ``channels: [defaults]`` is
    # added only when the file names none (no key, or the key with no value); a list of the user's (even
    # an empty one) is never changed nor reordered.
    if config_merge.condarc_parse(current, path).get("channels") is None:
        settings["channels"] = ["defaults"]
    show = _opt(options, "show_channel_urls")
    if show is not None:
        settings["show_channel_urls"] = bool(show)
    if "proxy" in (options or {}):
        via = {scheme: proxy_for("%s://%s/" % (scheme, chosen.hostport), options["proxy"]) for scheme in ("http", "https")}
        settings["proxy_servers"] = {k: v for k, v in via.items() if v} or None
    content = config_merge.condarc_merge(current, settings, path=path)
    check = config_merge.condarc_parse(content, path)
    if check.get("channel_alias") != alias or check.get("default_channels") != defaults:
        raise RenderError("%s: the rendered file does not read back as written; nothing was written" % path)
    return _result(current, content, {
        "client": "condarc", "path": path, "action": "render", "status": _status(selection),
        "mirror": selection.get("name"), "url_masked": chosen.masked,
        "channel_alias": mask_url(alias), "default_channels": [mask_url(u) for u in defaults],
        "custom_channels": sorted(custom), "reason": "channel_alias -> %s" % mask_url(alias)},
        chosen.has_credentials)


# --------------------------------------------------------------------------------------------------
# daemon.json


def _ranked_docker(selection, service):
    ranked = []
    for entry in selection.get("ranked") or []:
        ranked.append(_parse(entry.get("url"), "docker", bool(entry.get("insecure")),
                             "gpulab_mirrors.%s mirror %r" % (service, entry.get("name"))))
    return ranked


def render_daemon_json(current, selection, options=None):
    """/etc/docker/daemon.json: ranked ``registry-mirrors``, our ``insecure-registries``, fragments.

    Options: ``path``, ``service``, ``live_restore`` (bool or None to leave it), ``fragments``
    (other roles' keys by name), ``extra`` (the user's keys), ``mirrors_only`` (failover: only the
    mirror keys are considered). With a ``kept`` or ``none`` selection the mirror keys stay exactly
    as they are (a kept choice does not shrink the list to one mirror). The summary's ``needs``
    says whether dockerd must ``reload`` (SIGHUP) or ``restart`` to apply the change.
    """
    path = _opt(options, "path", "/etc/docker/daemon.json")
    service = _opt(options, "service", "docker")
    mirrors_only = bool(_opt(options, "mirrors_only", False))
    active = _status(selection) in ACTIVE and bool((selection or {}).get("ranked"))
    parsed = config_merge.daemon_json_parse(current, path)
    managed = {}
    if not mirrors_only and _opt(options, "live_restore") is not None:
        managed["live-restore"] = bool(options["live_restore"])
    ranked = []
    if active:
        ranked = _ranked_docker(selection, service)
        known = _known_hostports(selection)
        insecure = [h for h in parsed.get("insecure-registries", []) if str(h).lower() not in known]
        insecure += [m.hostport for m in ranked if m.insecure and m.hostport not in insecure]
        # An empty list, not a missing key: dockerd's reload keeps the old mirrors when the key is absent.
        managed["registry-mirrors"] = [m.url for m in ranked]
        managed["insecure-registries"] = insecure if insecure else (
            [] if "insecure-registries" in parsed else None)
    fragments = {} if mirrors_only else _opt(options, "fragments", {})
    extra = {} if mirrors_only else _opt(options, "extra", {})
    if isinstance(extra, dict) and ("registry-mirrors" in extra or "insecure-registries" in extra):
        raise RenderError("docker_mirror_extra_config: registry-mirrors and insecure-registries come from "
                          "gpulab_mirrors (the selection); remove them from docker_mirror_extra_config")
    content = config_merge.daemon_json_merge(current, managed, fragments, extra, path=path)
    new = config_merge.daemon_json_parse(content, path)
    if not new and not (current or "").strip():
        # nothing to merge into a missing (or empty) file: it stays as it is, not "{}"
        content = current or ""
    if active and new.get("registry-mirrors") != [m.url for m in ranked]:
        raise RenderError("%s: the rendered file does not read back as written; nothing was written" % path)
    changed_keys = config_merge.daemon_json_changed_keys(current, content, path)
    if not changed_keys:
        needs = "none"
    elif config_merge.daemon_json_needs_restart(current, content, path):
        needs = "restart"
    else:
        needs = "reload"
    warnings = [] if active else ["no healthy %s mirror (%s): registry-mirrors left as they are"
                                  % (service, _status(selection))]
    return _result(current, content, {
        "client": "daemon_json", "path": path, "action": "render" if active else "mirrors untouched",
        "status": _status(selection), "mirror": (selection or {}).get("name"),
        "registry_mirrors": [m.masked for m in ranked] if active else [mask_url(u) for u in parsed.get(
            "registry-mirrors", []) if isinstance(u, str)],
        "changed_keys": changed_keys, "needs": needs,
        "url_masked": ranked[0].masked if active else None,
        "reason": ("registry-mirrors -> %s" % ", ".join(m.masked for m in ranked)) if active
        else "registry-mirrors left as they are" + ("; other keys merged" if changed_keys else ""),
        "warnings": warnings})


# --------------------------------------------------------------------------------------------------
# containerd hosts.toml (docker.io)


def render_hosts_toml(current, selection, options=None):
    """containerd ``certs.d/<registry>/hosts.toml``: healthy mirrors in rank order, then the registry.

    Options: ``path``, ``service``, ``registry`` (default ``docker.io``, whose server is Docker Hub's
    registry; any other registry's server is ``https://<registry>``). The file is ours whole. Keys
    are TOML quoted keys, values basic strings; read back before it is returned. For docker.io a
    ``kept`` / ``none`` selection leaves it as it is; for another registry (the lab cache nodes that
    proxy it, from the cache_registry_hosts filter) no healthy host means a file with the server
    only: containerd goes straight to the registry instead of waiting on a dead cache.
    """
    registry = _opt(options, "registry", "docker.io")
    if not isinstance(registry, str) or not re.match(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$", registry):
        raise RenderError("hosts.toml: registry %r is not a registry host name (ghcr.io, nvcr.io, quay.io)" % (registry,))
    path = _opt(options, "path", "/etc/containerd/certs.d/%s/hosts.toml" % registry)
    service = _opt(options, "service", "docker")
    hub = registry == "docker.io"
    healthy = _status(selection) in ACTIVE and bool((selection or {}).get("ranked"))
    if hub and not healthy:
        return _untouched(current, selection, "hosts_toml", path, registry=registry)
    ranked = _ranked_docker(selection, service) if healthy else []
    server = HUB if hub else "https://%s" % registry
    what = "healthy mirrors" if hub else "healthy lab cache nodes"
    lines = ["# Written by gpulab.provision docker_mirror: %s for %s in rank order;" % (what, registry),
             "# containerd tries each host in turn, then the server. Edit gpulab_mirrors, not this file.",
             "server = %s" % toml_string(server)]
    for mirror in ranked:
        lines += ["", "[host.%s]" % toml_string(mirror.url), '  capabilities = ["pull", "resolve"]']
        if mirror.insecure:
            lines.append("  skip_verify = true")
    content = "\n".join(lines) + "\n"
    data = _toml_load(content, path)
    if data is not None and list(data.get("host", {})) != [m.url for m in ranked]:
        raise RenderError("%s: the rendered file does not read back as written; nothing was written" % path)
    return _result(current, content, {
        "client": "hosts_toml", "path": path, "action": "render", "status": _status(selection),
        "mirror": (selection or {}).get("name"), "hosts": [m.masked for m in ranked], "registry": registry,
        "reason": ("hosts -> %s" % ", ".join(m.masked for m in ranked)) if ranked
        else "no healthy cache node: %s directly" % server})


# --------------------------------------------------------------------------------------------------
# dockerd's proxy (a systemd drop-in: Docker 20.10 has no daemon.json "proxies")


def _systemd_quote(value):
    """A systemd ``Environment=`` assignment, quoted: ``"``, ``\\`` escaped, ``%`` doubled."""
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def render_docker_proxy(current, selection, options=None):
    """``docker.service.d/gpulab-proxy.conf``: dockerd's HTTP(S)_PROXY and NO_PROXY.

    Options: ``path``, ``proxy`` (the ``gpulab_proxy`` settings; None: no proxy, the file's
    content is empty and the role removes it). ``NO_PROXY`` holds the lab's direct hosts (the
    registry mirrors marked ``proxy: false``, cache nodes). dockerd reads its environment only when
    it starts: a change needs a restart (summary ``needs``). The selection is not used: the proxy
    is the same whichever mirror is chosen.
    """
    path = _opt(options, "path", "/etc/systemd/system/docker.service.d/gpulab-proxy.conf")
    env = proxy_environment(_opt(options, "proxy"))
    if not env:
        content = ""
    else:
        lines = ["# Written by gpulab.provision docker_mirror from gpulab_proxy; dockerd reads it when it starts.",
                 "[Service]"]
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
            if key in env:
                if any(ord(c) < 32 for c in env[key]):
                    raise RenderError("gpulab_proxy: %s holds a control character" % key)
                lines.append("Environment=%s" % _systemd_quote("%s=%s" % (key, env[key])))
        content = "\n".join(lines) + "\n"
    changed = content != (current or "")
    return _result(current, content, {
        "client": "docker_proxy", "path": path, "action": "render" if content else "remove",
        "status": _status(selection), "needs": "restart" if changed else "none",
        "proxy": {k: mask_url(v) for k, v in env.items() if k in ("HTTP_PROXY", "HTTPS_PROXY")},
        "reason": "dockerd proxy from gpulab_proxy" if content else "no gpulab_proxy: no drop-in"})


_RENDERERS = {
    "pip_conf": render_pip_conf,
    "uv_toml": render_uv_toml,
    "condarc": render_condarc,
    "daemon_json": render_daemon_json,
    "hosts_toml": render_hosts_toml,
    "docker_proxy": render_docker_proxy,
}


def render_client_config(current, client, selection, options=None):
    """Dispatch to the renderer of ``client`` (one of :data:`CLIENTS`).

    ``current``: the file's text, or None when it does not exist (the summary's ``present``). Every
    status is rendered, a missing file too: the renderer decides what stays as it is.
    """
    if client not in _RENDERERS:
        raise RenderError("client %r is unknown; use one of %s" % (client, ", ".join(CLIENTS)))
    if options is not None and not isinstance(options, dict):
        raise RenderError("options for %s must be a mapping" % client)
    if current is not None and not isinstance(current, str):
        raise RenderError("the current file text must be a string")
    try:
        result = _RENDERERS[client](current or "", selection, config_merge._plain(options or {}))
    except config_merge.ConfigMergeError as exc:
        raise RenderError(str(exc))
    result["summary"]["present"] = current is not None
    return result
