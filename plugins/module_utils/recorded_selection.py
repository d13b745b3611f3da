# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's recorded choice (the local fact mirror_select writes) as selection entries for the report.

The local fact ``gpulab_mirrors.fact`` holds, per service, ``{name, status, url_masked}`` of the last
good choice. The report, run on its own, shows that without probing: each entry keeps its recorded
status and says it was recorded, not probed now. Masked URLs only. Pure.
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.selection import mask_text


def recorded_selection(fact):
    """``{service: {name, status, url_masked}}`` -> ``{service: selection-shaped entry}``."""
    if not isinstance(fact, dict):
        raise ValueError("the local fact gpulab_mirrors must be a mapping of service -> {name, status, url_masked}")
    entries = {}
    for service, recorded in fact.items():
        if not isinstance(recorded, dict):
            continue
        masked = recorded.get("url_masked")
        name = recorded.get("name")
        entries[str(service)] = {
            # the fact is a file on the host: a name in it is shown as text, whatever its JSON type
            "name": None if name is None or isinstance(name, (dict, list)) else str(name),
            "status": recorded.get("status") or "none",
            "url_masked": mask_text(str(masked)) if masked else None,
            "insecure": False,
            "latency_ms": None,
            "ranked": [],
            "rejected": [],
            "recorded": True,
            "message": "recorded choice, not probed in this run",
        }
    return entries
