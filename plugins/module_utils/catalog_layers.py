# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layering the mirror catalog: add to it or reorder it per group without copying it.

Ansible replaces a variable set at two levels: a group's ``gpulab_mirrors`` hides the whole catalog
of ``all``, so a mirror added for ``all`` later never reaches that group. Two variables fix that:

* ``gpulab_mirrors_add_<anything>`` (any number of them, from any group or host): ``{service:
  [entries]}``. An entry whose name is already in the service's list replaces it in place (a site's
  own URL for tuna); a new name goes in front (a site's local mirror is preferred). Layers apply in
  the sorted order of their variable names.
* ``gpulab_mirror_order``: ``{service: [names]}``. Those names come first, in that order; the rest
  keep their order.

Pure: the playbooks pass the variables in (``query('ansible.builtin.varnames', '^gpulab_mirrors_add_')``).
"""

from __future__ import annotations

import copy

from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import name_problem

ADD_PREFIX = "gpulab_mirrors_add_"


class CatalogLayerError(ValueError):
    """A layer that cannot apply; the message names the variable and the fix."""


def _check_entries(where, entries):
    if not isinstance(entries, list):
        raise CatalogLayerError("%s: must be a list of mirrors like [{name: lab, url: https://...}]" % where)
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("name") is None or entry.get("name") == "":
            raise CatalogLayerError("%s[%d]: must be a mapping with a name (and url), like {name: lab, url: https://...}"
                                    % (where, index))
        # the catalog check's own rule (probe_spec.name_problem), named after the layer variable
        problem = name_problem(entry["name"])
        if problem:
            raise CatalogLayerError("%s[%d].name: %s" % (where, index, problem))


def layer_catalog(base, additions=None, order=None):
    """Return ``base`` with every ``gpulab_mirrors_add_*`` layer and ``gpulab_mirror_order`` applied.

    ``additions``: ``{variable name: {service: [entries]}}``; ``order``: ``{service: [names]}``.
    The input is not modified. URLs are not checked here: the catalog validation of mirror_select
    checks the result, naming the entry.
    """
    if base is None:
        base = {}
    if not isinstance(base, dict):
        raise CatalogLayerError("gpulab_mirrors: must be a mapping of service -> list of mirrors")
    catalog = copy.deepcopy(dict(base))
    for variable in sorted(additions or {}):
        layer = (additions or {})[variable]
        if layer is None:
            continue
        if not isinstance(layer, dict):
            raise CatalogLayerError("%s: must be a mapping of service -> list of mirrors to add" % variable)
        for service, entries in layer.items():
            where = "%s.%s" % (variable, service)
            problem = name_problem(service, "service name")
            if problem:
                raise CatalogLayerError("%s: service %s" % (variable, problem))
            _check_entries(where, entries)
            current = catalog.get(service)
            if current is None:
                current = []
            elif not isinstance(current, list):
                raise CatalogLayerError("gpulab_mirrors.%s: must be a list of mirrors" % service)
            current = list(current)
            names = [item.get("name") if isinstance(item, dict) else None for item in current]
            front = []
            for entry in entries:
                if entry["name"] in names:
                    current[names.index(entry["name"])] = copy.deepcopy(entry)
                else:
                    front.append(copy.deepcopy(entry))
            catalog[service] = front + current
    if order:
        if not isinstance(order, dict):
            raise CatalogLayerError("gpulab_mirror_order: must be a mapping of service -> list of mirror names")
        for service, wanted in order.items():
            where = "gpulab_mirror_order.%s" % service
            if service not in catalog:
                raise CatalogLayerError("%s: %r is not a service of gpulab_mirrors (%s)"
                                        % (where, service, ", ".join(sorted(catalog)) or "none"))
            if not isinstance(wanted, list) or not all(isinstance(name, str) for name in wanted):
                raise CatalogLayerError("%s: must be a list of mirror names, e.g. [sjtu, tuna]" % where)
            entries = catalog[service]
            by_name = {entry.get("name"): entry for entry in entries if isinstance(entry, dict)}
            unknown = [name for name in wanted if name not in by_name]
            if unknown:
                raise CatalogLayerError("%s: %s not in gpulab_mirrors.%s; use one of: %s"
                                        % (where, ", ".join(repr(n) for n in unknown), service, ", ".join(by_name)))
            if len(set(wanted)) != len(wanted):
                raise CatalogLayerError("%s: names must not repeat" % where)
            catalog[service] = [by_name[name] for name in wanted] + [
                entry for entry in entries if not (isinstance(entry, dict) and entry.get("name") in wanted)]
    return catalog
