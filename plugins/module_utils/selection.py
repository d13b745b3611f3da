# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirror selection policy: pure functions from probe results to the chosen mirror.

Used by the filters in ``plugins/filter/mirrors.py`` (controller side). Nothing here does I/O.

Inputs are the ``results`` list of ``gpulab.provision.mirror_probe`` (input order, URLs masked)
and the inventory catalog ``gpulab_mirrors`` (real URLs, possibly with credentials). Every string
that a person may see goes through :func:`mask_url`.

Policy, in one place:

- Only healthy mirrors are ever chosen or ranked.
- ``first_healthy`` keeps catalog order; ``fastest`` sorts by ``latency_ms`` (ties keep catalog
  order, a healthy mirror without a latency sorts last).
- ``max_latency_ms`` is a preference, not a filter: mirrors under the ceiling come first, healthy
  mirrors over it follow. When every healthy mirror is slow, a slow mirror beats no mirror; that
  is what keeps pip and Docker working.
- Healthy means current too (mirror_probe's freshness and requirement checks). An entry marked
  ``reference: true`` (pypi.org, say) is probed for comparison and never chosen unless
  ``use_reference`` is true.
- A pin to a healthy mirror wins over strategy and ceiling. A pin to an unhealthy or unknown
  mirror is not obeyed: the strategy decides and the status says ``pin_unhealthy``.
- Nothing healthy: ``on_all_down: keep`` re-uses the previous choice (by name, from the catalog)
  with status ``kept``; otherwise status ``none``.
"""

from __future__ import annotations

import re

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import (
    MirrorUrlError,
    mask_url,
    parse_mirror_url,
)
from ansible_collections.gpulab.provision.plugins.module_utils.probe_inputs import (
    FRESHNESS_POLICY_KEYS,
    entry_errors,
    input_errors,
    probe_image_errors,
)
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import MAX_MIRRORS, NAME_RULE, name_problem


def mask_text(text):
    """Mask credentials in a URL or in free text that contains URLs (one rule: mirror_url.mask_url)."""
    return mask_url(text)


STRATEGIES = ("first_healthy", "fastest")
ON_ALL_DOWN = ("keep", "fail")
KINDS = ("pypi", "conda", "docker", "apt", "http")
STATUSES = ("ok", "pinned", "pin_unhealthy", "kept", "none")
ENTRY_KEYS = ("name", "url", "insecure", "reference", "status_url", "proxy")
# Keys a catalog entry may carry for one kind only: a conda mirror with another layout than
# <url>/pkgs/<channel> and <url>/cloud/<channel> (conda_mirror renders them).
KIND_ENTRY_KEYS = {"conda": ("channel_alias", "default_channels", "custom_channels")}
# mirror_probe's bound for its one deadline.
MAX_TIMEOUT_S = 3600
POLICY_KEYS = ("strategy", "timeout_s", "max_latency_ms", "on_all_down") + FRESHNESS_POLICY_KEYS
# Options of gpulab.provision.mirror_probe that a service may set, per kind.
SERVICE_OPTIONS = {
    "pypi": ("project",),
    "conda": ("channel", "subdir"),
    "docker": ("docker_probe_image", "docker_image"),
    "apt": ("suite",),
    "http": ("path",),
}
DEFAULT_POLICY = {"strategy": "first_healthy", "timeout_s": 3, "max_latency_ms": None, "on_all_down": "keep",
                  "use_reference": False}

_STRATEGY_WORDS = {"first_healthy": "first healthy", "fastest": "fastest"}


class SelectionError(ValueError):
    """Input that the selection policy cannot work with (the filter names itself in front)."""


# --------------------------------------------------------------------------------------------
# Ranking


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_strategy(strategy, max_latency_ms):
    if strategy not in STRATEGIES:
        raise SelectionError("strategy %r is unknown; use one of: %s" % (strategy, ", ".join(STRATEGIES)))
    if max_latency_ms is not None and (not _is_number(max_latency_ms) or max_latency_ms <= 0):
        raise SelectionError("max_latency_ms %r must be a positive number or null" % (max_latency_ms,))


def _check_results(results):
    if not isinstance(results, (list, tuple)):
        raise SelectionError("results must be the list returned by mirror_probe, got %s" % type(results).__name__)
    for index, result in enumerate(results):
        if not isinstance(result, dict) or not isinstance(result.get("name"), str):
            raise SelectionError("results[%d] must be a mapping with a name (a mirror_probe result)" % index)


def _latency_key(result):
    latency = result.get("latency_ms")
    return latency if _is_number(latency) else float("inf")


def rank_mirrors(results, strategy="first_healthy", pin=None, max_latency_ms=None):
    """Healthy results in policy order (the same dicts). See the module docstring for the policy."""
    _check_results(results)
    _check_strategy(strategy, max_latency_ms)
    healthy = [result for result in results if result.get("healthy") is True]
    if strategy == "fastest":
        healthy = sorted(healthy, key=_latency_key)  # sorted() is stable: ties keep catalog order
    if max_latency_ms is not None:
        under = [result for result in healthy if _latency_key(result) <= max_latency_ms]
        healthy = under + [result for result in healthy if _latency_key(result) > max_latency_ms]
    if pin is not None:
        pinned = [result for result in healthy if result["name"] == pin]
        healthy = pinned + [result for result in healthy if result["name"] != pin]
    return healthy


def pick_mirror(results, strategy="first_healthy", pin=None, max_latency_ms=None):
    """The chosen result (the same dict) or None when nothing is healthy."""
    ranked = rank_mirrors(results, strategy=strategy, pin=pin, max_latency_ms=max_latency_ms)
    return ranked[0] if ranked else None


# --------------------------------------------------------------------------------------------
# The per-service entry of gpulab_mirrors_selected


def _policy(policy):
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        raise SelectionError("policy must be a mapping like %r" % (DEFAULT_POLICY,))
    merged = dict(DEFAULT_POLICY)
    merged.update(policy)
    if merged["on_all_down"] not in ON_ALL_DOWN:
        raise SelectionError("on_all_down %r is unknown; use keep or fail" % (merged["on_all_down"],))
    _check_strategy(merged["strategy"], merged["max_latency_ms"])
    return merged


def _previous_name(previous):
    if isinstance(previous, dict):
        previous = previous.get("name")
    if previous is None or previous == "":
        return None
    if isinstance(previous, int) and not isinstance(previous, bool):
        previous = str(previous)  # a fact written by hand: the mirror "123", as text
    if not isinstance(previous, str):
        raise SelectionError("previous must be a mirror name or the local fact entry with a name")
    return previous


def _public(entry, result=None):
    url = entry["url"]
    result = result or {}
    return {
        "name": entry["name"],
        "url": url,
        "url_masked": mask_url(url),
        "insecure": bool(entry.get("insecure", False)),
        "latency_ms": result.get("latency_ms"),
        "lag": result.get("lag"),
        "age_h": result.get("age_h"),
    }


REFERENCE_ONLY = "reference entry, not chosen (gpulab_mirror_policy.use_reference: false)"


def _reason(result, reference=False):
    if result is None:
        return "not probed"
    if reference and result.get("healthy"):
        return REFERENCE_ONLY
    return mask_text(result.get("reason") or ("unhealthy" if not result.get("healthy") else "healthy"))


def mirror_selection(results, catalog_entries, policy=None, pin=None, previous=None):
    """One service's entry of ``gpulab_mirrors_selected`` (see docs/CONVENTIONS.md)."""
    _check_results(results)
    if not isinstance(catalog_entries, (list, tuple)) or not all(
        isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("url"), str)
        for entry in catalog_entries
    ):
        raise SelectionError("catalog_entries must be the service's list of {name, url, insecure}")
    policy = _policy(policy)
    if pin == "":
        pin = None
    previous = _previous_name(previous)
    catalog = {entry["name"]: entry for entry in catalog_entries}
    by_name = {}
    for result in results:
        if result["name"] not in catalog:
            raise SelectionError("result %r is not in the catalog (%s)" % (result["name"], ", ".join(catalog)))
        by_name[result["name"]] = result

    # reference entries (reference: true) are probed for comparison; chosen only where the policy says so
    held_back = set() if policy["use_reference"] else {
        entry["name"] for entry in catalog_entries if entry.get("reference") is True}
    candidates = [result for result in results if result["name"] not in held_back]
    ranked_results = rank_mirrors(candidates, policy["strategy"], pin, policy["max_latency_ms"])
    ranked = [_public(catalog[result["name"]], result) for result in ranked_results]
    ranked_names = {entry["name"] for entry in ranked}
    rejected = [
        {"name": entry["name"], "url_masked": mask_url(entry["url"]),
         "reason": _reason(by_name.get(entry["name"]), entry["name"] in held_back)}
        for entry in catalog_entries
        if entry["name"] not in ranked_names
    ]
    why_not = "; ".join("%s: %s" % (item["name"], item["reason"]) for item in rejected)

    if ranked:
        chosen = ranked[0]
        how = _STRATEGY_WORDS[policy["strategy"]]
        ceiling = policy["max_latency_ms"]
        if ceiling is not None and not (_is_number(chosen["latency_ms"]) and chosen["latency_ms"] <= ceiling):
            how += ", every healthy mirror is over %s ms" % ceiling
        if pin is not None and pin == chosen["name"]:
            status, text = "pinned", "%s chosen (pinned)" % pin
        elif pin is not None:
            status = "pin_unhealthy"
            pin_why = _reason(by_name[pin], pin in held_back) if pin in by_name else "not in the catalog"
            text = "pin %s not obeyed (%s); %s chosen (%s)" % (pin, pin_why, chosen["name"], how)
        else:
            status, text = "ok", "%s chosen (%s)" % (chosen["name"], how)
        entry = dict(chosen)
    elif policy["on_all_down"] == "keep" and previous in catalog:
        status = "kept"
        entry = _public(catalog[previous])
        ranked = [dict(entry)]
        text = "no mirror healthy; keeping the previous choice %s" % previous
    else:
        status = "none"
        entry = {"name": None, "url": None, "url_masked": None, "insecure": False, "latency_ms": None, "lag": None,
                 "age_h": None}
        if policy["on_all_down"] == "fail":
            text = "no mirror healthy (on_all_down: fail)"
        elif previous is not None:
            text = "no mirror healthy; previous choice %s is no longer in the catalog" % previous
        else:
            text = "no mirror healthy and no previous choice to keep"
    if why_not:
        text += "; " + why_not
    entry.update({"status": status, "ranked": ranked, "rejected": rejected, "message": text})
    return entry


# --------------------------------------------------------------------------------------------
# Catalog validation (preflight)


def selection_urls(selected, mirrors):
    """``gpulab_mirrors_selected`` with every real URL taken back from the catalog, by mirror name.

    A module's output has the secrets of its no_log values replaced by ``********``, so the
    ``selected`` that ``mirror_probe_all`` returns carries masked credentials in ``url`` and in each
    ``ranked`` entry. The config roles need the real URL: it is the catalog's (``mirrors``, the
    host's ``gpulab_mirrors``). An entry whose name is not in the catalog keeps what it has.
    """
    out = {}
    for service, entry in (selected or {}).items():
        catalog = {item["name"]: item["url"] for item in (mirrors or {}).get(service) or []
                   if isinstance(item, dict) and "name" in item and "url" in item}
        fixed = dict(entry)
        if fixed.get("name") in catalog:
            fixed["url"] = catalog[fixed["name"]]
        fixed["ranked"] = [dict(item, url=catalog[item["name"]]) if item.get("name") in catalog else item
                           for item in entry.get("ranked") or []]
        out[service] = fixed
    return out


def _url_errors(where, url, insecure, kind):
    """The one URL check (mirror_url.parse_mirror_url), named after the inventory path."""
    try:
        parse_mirror_url(url, kind=kind, insecure=insecure is True)
    except MirrorUrlError as exc:
        message = str(exc)
        return ["%s: %s" % (where, message[4:] if message.startswith("url ") else message)]
    return []


def _conda_layout_errors(here, entry, insecure):
    errors = []
    if "channel_alias" in entry:
        errors.extend(_url_errors(here + ".channel_alias", entry["channel_alias"], insecure, "conda"))
    channels = entry.get("default_channels")
    if channels is not None:
        if not isinstance(channels, list) or not channels:
            errors.append("%s.default_channels: must be a non-empty list of channel URLs" % here)
        else:
            for index, url in enumerate(channels):
                errors.extend(_url_errors("%s.default_channels[%d]" % (here, index), url, insecure, "conda"))
    custom = entry.get("custom_channels")
    if custom is not None:
        if not isinstance(custom, dict) or not custom:
            errors.append("%s.custom_channels: must be a mapping of channel name -> base URL, e.g. "
                          "{conda-forge: https://mirror.example/cloud}" % here)
        else:
            for name, url in custom.items():
                if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", name):
                    errors.append("%s.custom_channels: %r is not a channel name (letters, digits, . _ -)"
                                  % (here, name))
                else:
                    errors.extend(_url_errors("%s.custom_channels.%s" % (here, name), url, insecure, "conda"))
    return errors


def _service_errors(service, spec):
    where = "gpulab_mirror_services.%s" % service
    if not isinstance(spec, dict):
        return ["%s: must be a mapping like {kind: pypi}" % where]
    kind = spec.get("kind")
    if kind not in KINDS:
        return ["%s.kind: %r is not a probe kind; use one of: %s" % (where, kind, ", ".join(KINDS))]
    allowed = ("kind",) + SERVICE_OPTIONS[kind]
    errors = ["%s: unknown key %r for kind %s; allowed: %s" % (where, key, kind, ", ".join(allowed))
              for key in spec if key not in allowed]
    if kind == "docker" and spec.get("docker_probe_image") is not None:
        errors.extend(probe_image_errors(where, spec["docker_probe_image"]))
    return errors


def _policy_errors(policy):
    if policy is None:
        return []
    if not isinstance(policy, dict):
        return ["gpulab_mirror_policy: must be a mapping like {strategy: first_healthy, timeout_s: 3, on_all_down: keep}"]
    errors = ["gpulab_mirror_policy: unknown key %r; allowed: %s" % (key, ", ".join(POLICY_KEYS))
              for key in policy if key not in POLICY_KEYS]
    if "strategy" in policy and policy["strategy"] not in STRATEGIES:
        errors.append("gpulab_mirror_policy.strategy: %r is unknown; use %s"
                      % (policy["strategy"], " or ".join(STRATEGIES)))
    if "timeout_s" in policy and not (_is_number(policy["timeout_s"]) and 0 < policy["timeout_s"] <= MAX_TIMEOUT_S):
        errors.append("gpulab_mirror_policy.timeout_s: %r must be a number of seconds > 0 and at most %d, e.g. 3"
                      % (policy["timeout_s"], MAX_TIMEOUT_S))
    ceiling = policy.get("max_latency_ms")
    if ceiling is not None and not (_is_number(ceiling) and ceiling > 0):
        errors.append("gpulab_mirror_policy.max_latency_ms: %r must be a number > 0, or null for no ceiling"
                      % (ceiling,))
    if "on_all_down" in policy and policy["on_all_down"] not in ON_ALL_DOWN:
        errors.append("gpulab_mirror_policy.on_all_down: %r is unknown; use keep (keep the last good choice) "
                      "or fail" % (policy["on_all_down"],))
    return errors


def _pin_errors(pin, names_by_service):
    if pin is None:
        return []
    if not isinstance(pin, dict):
        return ["gpulab_mirror_pin: must be a mapping of service -> mirror name, e.g. {pypi: aliyun}"]
    errors = []
    for service, name in pin.items():
        where = "gpulab_mirror_pin.%s" % service
        if name is None or name == "":
            continue
        if service not in names_by_service:
            errors.append("%s: %r is not a service of gpulab_mirrors (%s); remove the pin or add the service"
                          % (where, service, ", ".join(sorted(names_by_service)) or "none"))
        elif name_problem(name):
            errors.append("%s: %s" % (where, name_problem(name)))
        elif name not in names_by_service[service]:
            errors.append("%s: %r is not a mirror of gpulab_mirrors.%s; use one of: %s"
                          % (where, name, service, ", ".join(names_by_service[service])))
    return errors


def _cache_hint(name):
    """Where a bad ``cache-<host>`` name comes from: a lab cache node's inventory name."""
    if isinstance(name, str) and name.startswith("cache-"):
        return ("; cache-%s is the entry of the lab cache node %s (its inventory name): give that host a name "
                "made of %s" % (name[6:], name[6:], NAME_RULE))
    return ""


def mirror_catalog_errors(mirrors, services=None, policy=None, pin=None, require=None):
    """Every problem in the mirror inventory, as messages naming the variable path and the fix.

    ``require`` is ``gpulab_mirror_require``. An empty list means the catalog, policy, pin and
    requirements are usable.
    """
    services = services if services is not None else {}
    if not isinstance(mirrors, dict):
        return ["gpulab_mirrors: must be a mapping of service -> list of mirrors, got %s" % type(mirrors).__name__]
    errors = []
    if not isinstance(services, dict):
        errors.append("gpulab_mirror_services: must be a mapping of service -> {kind: ...}")
        services = {}
    if not mirrors:
        errors.append("gpulab_mirrors: no services; list at least one, e.g. pypi: [{name: pypi, url: https://pypi.org/simple}]")
    names_by_service = {}
    for service, entries in mirrors.items():
        where = "gpulab_mirrors.%s" % service
        kind = None
        problem = name_problem(service, "service name")
        if problem:
            errors.append("gpulab_mirrors: service %s" % problem)
            continue
        if service not in services:
            errors.append("%s: unknown service; add gpulab_mirror_services.%s: {kind: %s} to say how to probe it"
                          % (where, service, "|".join(KINDS)))
        else:
            service_errors = _service_errors(service, services[service])
            errors.extend(service_errors)
            if not service_errors:
                kind = services[service]["kind"]
        if not isinstance(entries, list):
            errors.append("%s: must be a list of {name, url} in preference order" % where)
            continue
        if not entries:
            errors.append("%s: empty list; list at least one mirror or remove the service" % where)
            continue
        if len(entries) > MAX_MIRRORS:
            errors.append("%s: %d mirrors; a service takes at most %d (all are probed at once)"
                          % (where, len(entries), MAX_MIRRORS))
        seen = {}
        names_by_service[service] = []
        for index, entry in enumerate(entries):
            here = "%s[%d]" % (where, index)
            if not isinstance(entry, dict):
                errors.append("%s: must be a mapping like {name: tuna, url: https://...}" % here)
                continue
            allowed = ENTRY_KEYS + KIND_ENTRY_KEYS.get(kind, ())
            errors.extend("%s: unknown key %r; allowed: %s" % (here, key, ", ".join(allowed))
                          for key in entry if key not in allowed)
            name = entry.get("name")
            if name is None or name == "":
                errors.append("%s.name: missing; give each mirror a short unique name, e.g. tuna" % here)
            elif name_problem(name):
                errors.append("%s.name: %s%s" % (here, name_problem(name), _cache_hint(name)))
            elif name in seen:
                errors.append("%s.name: %r duplicates %s[%d]; names must be unique per service"
                              % (here, name, where, seen[name]))
            else:
                seen[name] = index
                names_by_service[service].append(name)
            insecure = entry.get("insecure", False)
            if not isinstance(insecure, bool):
                errors.append("%s.insecure: %r must be true or false" % (here, insecure))
            if "proxy" in entry and entry["proxy"] is not False:
                errors.append("%s.proxy: %r; the only value is false (reach this mirror directly, not through "
                              "gpulab_proxy); remove the key otherwise" % (here, entry["proxy"]))
            if "url" not in entry:
                errors.append("%s.url: missing; e.g. url: https://mirror.example/..." % here)
            else:
                errors.extend(_url_errors(here + ".url", entry["url"], insecure, kind))
            if kind == "conda":
                errors.extend(_conda_layout_errors(here, entry, insecure))
            errors.extend(entry_errors(here, entry, insecure))
    errors.extend(_policy_errors(policy))
    errors.extend(_pin_errors(pin, names_by_service))
    kinds = {service: services[service].get("kind") for service in mirrors
             if not name_problem(service) and isinstance(services.get(service), dict)}
    errors.extend(input_errors(kinds, policy, require))
    return errors
