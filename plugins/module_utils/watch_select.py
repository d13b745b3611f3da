# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""failover.yml's fast path: every service probed in one call, chosen, and the files that would change.

Used by the module ``gpulab.provision.mirror_probe_all``. :func:`select_services` turns the
probe answers into ``gpulab_mirrors_selected`` with :func:`selection.mirror_selection` (the
function mirror_select uses) and the local fact as mirror_select's record.yml writes it.
:func:`pending_files` renders each client file with the config roles' renderers and options
(:mod:`watch_config`) and lists the files whose bytes would change: a config role whose files
would all stay byte-identical can be skipped.
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.client_files import plan_files
from ansible_collections.gpulab.provision.plugins.module_utils.selection import mirror_selection
from ansible_collections.gpulab.provision.plugins.module_utils.watch import fact_entry

# Which config role writes which client file.
ROLE_OF = {"pip_conf": "pip_mirror", "uv_toml": "pip_mirror", "condarc": "conda_mirror",
           "daemon_json": "docker_mirror", "hosts_toml": "docker_mirror"}


def select_services(answers, mirrors, policy, pin=None, previous=None):
    """``{selected, fact, down}`` from ``probe_services``' answers.

    ``previous`` is the local fact (service -> {name, status, url_masked}); ``down`` lists the
    services with status ``none``. Services whose status is ``kept`` or ``none`` keep their previous
    fact entry, as mirror_select records it.
    """
    previous = previous if isinstance(previous, dict) else {}
    pin = pin or {}
    selected, fact, down = {}, dict(previous), []
    for service, answer in answers.items():
        before = previous.get(service) if isinstance(previous.get(service), dict) else {}
        entry = mirror_selection(answer.get("results") or [], mirrors[service], policy, pin.get(service) or None,
                                 before.get("name"))
        if "error" in answer:
            entry["message"] = "probe not run: %s; %s" % (answer["error"], entry["message"])
        selected[service] = entry
        if entry["status"] in ("kept", "none"):
            if entry["status"] == "none":
                down.append(service)
            continue
        fact[service] = fact_entry(entry)
    return {"selected": selected, "fact": fact, "down": down}


def pending_files(watched, selected, read, exists):
    """Files a config role would change, per role: ``{role: [{path, client, reason}]}``.

    :arg watched: ``watch_config(...)["config"]["services"]``. :arg selected: gpulab_mirrors_selected.
    :arg read: path -> text or None (missing). :arg exists: path -> bool (directories).
    A file that cannot be rendered (broken, or PyYAML missing here) counts as pending: the role
    runs and reports the problem itself.
    """
    pending = {}
    for service, cfg in watched.items():
        entry = selected.get(service)
        if entry is None:
            continue
        for plan in plan_files(cfg["clients"], entry, cfg["mirrors"], create=True, read=read, exists=exists):
            path, kind = plan["entry"]["path"], plan["entry"]["client"]
            if plan["error"]:
                reason = plan["error"]
            elif plan["result"] is not None and plan["result"]["changed"]:
                reason = "missing" if plan["missing"] else plan["result"]["summary"]["reason"]
            else:
                continue
            pending.setdefault(ROLE_OF[kind], []).append({"path": path, "client": kind, "reason": reason})
    return pending
