# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""conda mirror health: a channel/subdir ``repodata.json`` that parses and lists packages.

Standard library only; runs on the managed host.
"""

from __future__ import annotations

import json

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import join_path
from ansible_collections.gpulab.provision.plugins.module_utils.probe_session import text_of
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import Verdict


def probe_url(base_url, options):
    return join_path(base_url, options["channel"], options["subdir"], "repodata.json")


def classify_conda(status, headers, body):
    """repodata.json that parses, with a ``packages`` or ``packages.conda`` mapping."""
    if not 200 <= status < 300:
        return Verdict(False, "HTTP %d" % status)
    try:
        data = json.loads(text_of(body))
    except ValueError:
        return Verdict(False, "repodata does not parse")
    if not isinstance(data, dict):
        return Verdict(False, "repodata does not parse")
    if isinstance(data.get("packages"), dict) or isinstance(data.get("packages.conda"), dict):
        return Verdict(True)
    return Verdict(False, "repodata has no packages")


def check(session, options):
    url = probe_url(session.mirror.base_url, options)
    resp, body = session.get(url, {"Accept-Encoding": "gzip"}, what="repodata")
    return classify_conda(resp.status, resp.headers, body)
