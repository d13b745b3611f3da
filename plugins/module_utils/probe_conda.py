# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""conda mirror health: a channel/subdir ``repodata.json`` that parses and lists packages, its
``Last-Modified`` (when the mirror last synced it), and the pinned packages the lab needs.

Standard library only; runs on the managed host.
"""

from __future__ import annotations

import json

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import join_path
from ansible_collections.gpulab.provision.plugins.module_utils.probe_freshness import http_date
from ansible_collections.gpulab.provision.plugins.module_utils.probe_require import conda_lists, parse_conda
from ansible_collections.gpulab.provision.plugins.module_utils.probe_session import text_of
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import Verdict
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import header


def probe_url(base_url, options):
    return join_path(base_url, options["channel"], options["subdir"], "repodata.json")


def classify_conda(status, headers, body):
    """repodata.json that parses, with a ``packages`` or ``packages.conda`` mapping."""
    return _classified(status, body)[0]


def _classified(status, body):
    """``(Verdict, parsed repodata or None)``."""
    if not 200 <= status < 300:
        return Verdict(False, "HTTP %d" % status), None
    try:
        data = json.loads(text_of(body))
    except ValueError:
        return Verdict(False, "repodata does not parse"), None
    if not isinstance(data, dict):
        return Verdict(False, "repodata does not parse"), None
    if isinstance(data.get("packages"), dict) or isinstance(data.get("packages.conda"), dict):
        return Verdict(True), data
    return Verdict(False, "repodata has no packages"), None


def check_require(items):
    """Parsed ``require`` items, or RequirementError naming the first bad one."""
    return [parse_conda(item) for item in items]


def _repodata(session, options, subdir):
    url = probe_url(session.mirror.base_url, dict(options, subdir=subdir))
    resp, body = session.get(url, {"Accept-Encoding": "gzip"}, what="repodata")
    verdict, data = _classified(resp.status, body)
    if verdict.healthy:
        verdict.updated = http_date(header(resp.headers, "Last-Modified"))
    return verdict, data


def check(session, options):
    """The subdir's repodata; pins missing there are looked for in the channel's noarch too."""
    wanted = check_require(options.get("require") or [])
    verdict, data = _repodata(session, options, options["subdir"])
    if not verdict.healthy:
        return verdict
    lacking = [(name, version, exact) for name, version, exact in wanted if not conda_lists(data, name, version, exact)]
    searched = [options["subdir"]]
    if lacking and options["subdir"] != "noarch":
        searched.append("noarch")
        _noarch, noarch = _repodata(session, options, "noarch")
        lacking = [pin for pin in lacking if not conda_lists(noarch, *pin)]
    if lacking:
        return Verdict(False, "lacks %s (in %s)" % (
            ", ".join("%s%s%s" % (name, "==" if exact else "=", version) for name, version, exact in lacking),
            " or ".join("%s/%s" % (options["channel"], subdir) for subdir in searched)), updated=verdict.updated)
    return verdict
