# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""apt repository health: a clearsigned ``InRelease`` (suite under dists/, or a flat repository),
its ``Date`` (when the repository was published) and ``Valid-Until`` (apt refuses it after that).

Standard library only; runs on the managed host.
"""

from __future__ import annotations

import re
import time

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import join_path
from ansible_collections.gpulab.provision.plugins.module_utils.probe_freshness import inrelease_times
from ansible_collections.gpulab.provision.plugins.module_utils.probe_session import text_of
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import Verdict

_APT_FIELD = re.compile(r"^(Suite|Codename|Date):", re.MULTILINE)


def probe_url(base_url, options):
    suite = options["suite"]
    if suite.endswith("/"):  # flat repository: `deb URL sub/` reads URL/sub/InRelease
        sub = suite.strip("/")
        if sub in ("", "."):
            return join_path(base_url, "InRelease")
        return join_path(base_url, sub, "InRelease")
    return join_path(base_url, "dists", suite, "InRelease")


def classify_apt(status, headers, body):
    """A clearsigned InRelease with a Suite, Codename or Date field."""
    if not 200 <= status < 300:
        return Verdict(False, "HTTP %d" % status)
    text = text_of(body).lstrip("\ufeff")
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return Verdict(False, "not a signed InRelease file")
    if not _APT_FIELD.search(text):
        return Verdict(False, "InRelease has no Suite, Codename or Date field")
    return Verdict(True)


def check(session, options, now=None):
    """InRelease, its ``Date`` (the sync time) and ``Valid-Until`` (expired is unhealthy: apt refuses it)."""
    url = probe_url(session.mirror.base_url, options)
    resp, body = session.get(url, what="InRelease")
    verdict = classify_apt(resp.status, resp.headers, body)
    if not verdict.healthy:
        return verdict
    date, valid_until = inrelease_times(text_of(body))
    now = time.time() if now is None else now
    if valid_until is not None and valid_until < now:
        return Verdict(False, "InRelease expired %s (Valid-Until)" % time.strftime("%Y-%m-%dT%H:%MZ",
                                                                                   time.gmtime(valid_until)),
                       updated=date)
    verdict.updated = date
    return verdict
