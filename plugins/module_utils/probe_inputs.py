# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory's freshness and requirement inputs: their checks, and the probe arguments they make.

Controller side, pure. Inventory keys (see docs/freshness.md):

- ``gpulab_mirror_require: {service: [item, ...]}`` - pinned items every mirror of the service must
  serve (PyPI ``name==version``, conda ``name=version``, Docker ``repository:tag``, never latest);
- ``gpulab_mirror_policy.max_serial_lag`` / ``max_age_h`` - a number for every service, or a
  mapping ``{service: number}``; ``use_reference`` - whether a ``reference: true`` entry may be chosen;
- per catalog entry ``reference: true`` and ``status_url: <feed URL>#<entry name>``;
- per service ``docker_probe_image`` (kind docker): the pinned image every registry mirror must serve.

:func:`input_errors` names each bad value by its inventory path with the fix;
:func:`probe_args` turns a service's inventory into the ``gpulab.provision.mirror_probe`` arguments.
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.image_ref import check_require as docker_require
from ansible_collections.gpulab.provision.plugins.module_utils.probe_require import (
    MAX_ITEMS,
    RequirementError,
    check_length,
    parse_conda,
    parse_pypi,
)
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError, check_status_url

PROBE_ENTRY_KEYS = ("name", "url", "insecure", "reference", "status_url")
FRESHNESS_POLICY_KEYS = ("max_serial_lag", "max_age_h", "use_reference")
REQUIRE_PARSERS = {
    "pypi": parse_pypi,
    "conda": parse_conda,
    "docker": lambda item: check_length(item) or docker_require([item]),
}
_EXAMPLES = {"pypi": "torch==2.5.1", "conda": "pytorch=2.5.1", "docker": "pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime"}
_LIMITS = {"max_serial_lag": ("a whole number of serials >= 0", 500), "max_age_h": ("a number of hours > 0", 24)}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _limit_ok(key, value):
    if key == "max_serial_lag":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return _is_number(value) and value > 0


def for_service(value, service):
    """A freshness limit for one service: the number itself, or the mapping's entry (None when absent)."""
    if isinstance(value, dict):
        return value.get(service)
    return value


def policy_errors(policy, services):
    """``gpulab_mirror_policy.max_serial_lag`` / ``max_age_h`` / ``use_reference``."""
    if not isinstance(policy, dict):
        return []
    errors = []
    for key, (what, example) in _LIMITS.items():
        value = policy.get(key)
        where = "gpulab_mirror_policy.%s" % key
        if value is None:
            continue
        if isinstance(value, dict):
            for service, limit in value.items():
                if service not in services:
                    errors.append("%s.%s: %r is not a service of gpulab_mirrors (%s); remove it"
                                  % (where, service, service, ", ".join(sorted(services)) or "none"))
                elif limit is not None and not _limit_ok(key, limit):
                    errors.append("%s.%s: %r must be %s (e.g. %s) or null" % (where, service, limit, what, example))
        elif not _limit_ok(key, value):
            errors.append("%s: %r must be %s (e.g. %s), a mapping of service -> limit, or null"
                          % (where, value, what, example))
    if "use_reference" in policy and not isinstance(policy["use_reference"], bool):
        errors.append("gpulab_mirror_policy.use_reference: %r must be true or false" % (policy["use_reference"],))
    return errors


def require_errors(require, kinds):
    """``gpulab_mirror_require``: ``{service: [pinned item, ...]}``; ``kinds`` maps service -> kind."""
    if require is None:
        return []
    if not isinstance(require, dict):
        return ["gpulab_mirror_require: must be a mapping of service -> list of pinned items, "
                "e.g. {pypi: ['torch==2.5.1']}"]
    errors = []
    for service, items in require.items():
        where = "gpulab_mirror_require.%s" % service
        if service not in kinds:
            errors.append("%s: %r is not a service of gpulab_mirrors (%s); remove it or add the service"
                          % (where, service, ", ".join(sorted(kinds)) or "none"))
            continue
        kind = kinds[service]
        if items is None:
            continue
        if kind not in REQUIRE_PARSERS:
            errors.append("%s: kind %s has no requirements; only pypi, conda and docker services take them"
                          % (where, kind))
            continue
        if not isinstance(items, list):
            errors.append("%s: must be a list of pinned items, e.g. [%r]" % (where, _EXAMPLES[kind]))
            continue
        if len(items) > MAX_ITEMS:
            errors.append("%s: %d pinned items; a service takes at most %d (pin what the lab's jobs "
                          "cannot run without)" % (where, len(items), MAX_ITEMS))
            continue
        for index, item in enumerate(items):
            try:
                REQUIRE_PARSERS[kind](item)
            except ValueError as exc:  # RequirementError, and whatever else a parser meets: name the item
                errors.append("%s[%d]: %s" % (where, index, exc))
    return errors


def entry_errors(here, entry, insecure):
    """``reference`` and ``status_url`` of one catalog entry."""
    errors = []
    if "reference" in entry and not isinstance(entry["reference"], bool):
        errors.append("%s.reference: %r must be true or false (true: probed for comparison, chosen only "
                      "with gpulab_mirror_policy.use_reference: true)" % (here, entry["reference"]))
    if entry.get("status_url") is not None:
        try:
            check_status_url(entry["status_url"], insecure is True, here + ".status_url")
        except ProbeSpecError as exc:
            errors.append(str(exc))
    return errors


def probe_image_errors(where, image):
    """``gpulab_mirror_services.<svc>.docker_probe_image``: a pinned Docker Hub image."""
    try:
        docker_require([image])
    except RequirementError as exc:
        return ["%s.docker_probe_image: %s" % (where, exc)]
    return []


def input_errors(kinds, policy=None, require=None):
    """Every problem with the freshness and requirement inputs; ``kinds`` maps service -> kind."""
    errors = []
    errors.extend(policy_errors(policy, kinds))
    errors.extend(require_errors(require, kinds))
    return errors


def probe_args(service, entries, spec, policy=None, require=None):
    """The ``gpulab.provision.mirror_probe`` arguments for one service (after preflight passed).

    ``entries``: the service's catalog list (keys the probe does not read are dropped, a conda
    entry's channel_alias for one); ``spec``: its ``gpulab_mirror_services`` entry; ``policy``
    the merged policy; ``require`` the whole ``gpulab_mirror_require``.
    """
    policy = policy or {}
    spec = dict(spec or {})
    args = {
        "kind": spec.pop("kind"),
        "mirrors": [{key: entry[key] for key in PROBE_ENTRY_KEYS if key in entry} for entry in entries],
        "timeout": policy.get("timeout_s", 3),
        "require": list((require or {}).get(service) or []),
        "max_serial_lag": for_service(policy.get("max_serial_lag"), service),
        "max_age_h": for_service(policy.get("max_age_h"), service),
    }
    image = spec.pop("docker_probe_image", None) or spec.pop("docker_image", None)
    spec.pop("docker_image", None)
    if image:
        args["docker_image"] = image
    args.update(spec)
    return args
