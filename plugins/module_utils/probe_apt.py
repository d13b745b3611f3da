# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""apt repository health: a clearsigned ``InRelease`` (suite under dists/, or a flat repository).

Standard library only; runs on the managed host.
"""

from __future__ import annotations

import re

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import join_path
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


def check(session, options):
    url = probe_url(session.mirror.base_url, options)
    resp, body = session.get(url, what="InRelease")
    return classify_apt(resp.status, resp.headers, body)
