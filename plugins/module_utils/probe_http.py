# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health of kind ``http`` mirrors: any 2xx for ``<url><path>``, the body arriving in time.

Standard library only; runs on the managed host.
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import join_path
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import Verdict


def probe_url(base_url, options):
    return join_path(base_url, options["path"]) if options["path"] else base_url


def classify_http(status, headers, body=None):
    """Any 2xx."""
    if 200 <= status < 300:
        return Verdict(True)
    return Verdict(False, "HTTP %d" % status)


def check(session, options):
    url = probe_url(session.mirror.base_url, options)
    # the body only has to arrive in time; a big one is fine, reading just stops at the cap
    resp, _body = session.get(url, truncate=True)
    return classify_http(resp.status, resp.headers)
