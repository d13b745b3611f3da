# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references (``ubuntu:20.04``, ``nvcr.io/nvidia/pytorch:23.10-py3``) parsed the way Docker does.

Every comparison of names in this collection goes through :func:`normalize_ref`, so the module,
the role's filters and the engines agree on when two names are the same.
"""

from __future__ import annotations

import re

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError

_DOMAIN_COMP = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = _DOMAIN_COMP + r"(?:\." + _DOMAIN_COMP + r")*(?::[0-9]+)?"
_PATH_COMP = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REF_RE = re.compile(
    r"^(?:(?P<domain>" + _DOMAIN + r")/)?"
    r"(?P<path>" + _PATH_COMP + r"(?:/" + _PATH_COMP + r")*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$",
    re.ASCII,
)
_PATH_COMP_RE = re.compile("^" + _PATH_COMP + "$")


def parse_ref(ref):
    """Split an image reference like Docker does: (domain, path, tag, digest), fully qualified.

    ``ubuntu:20.04`` -> ('docker.io', 'library/ubuntu', '20.04', None); a missing tag stays None.
    """
    text = str(ref or "").strip()
    m = _REF_RE.match(text)
    if not m or len(text) > 512:
        raise ImageArchiveError("invalid image reference %r" % ref, kind="invalid")
    domain, path, tag, digest = m.group("domain"), m.group("path"), m.group("tag"), m.group("digest")
    if domain is not None and not ("." in domain or ":" in domain or domain == "localhost"
                                   or domain != domain.lower()):
        # docker: the first component is a registry only if it looks like a host name
        if not _PATH_COMP_RE.match(domain):
            raise ImageArchiveError("invalid image reference %r" % ref, kind="invalid")
        path = domain + "/" + path
        domain = None
    if domain in (None, "index.docker.io"):
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if len(domain) + 1 + len(path) > 255:
        raise ImageArchiveError("invalid image reference %r: name longer than 255" % ref,
                                kind="invalid")
    return domain, path, tag, digest


def normalize_ref(ref):
    """Fully qualified form used for comparisons: ``docker.io/library/ubuntu:20.04``."""
    domain, path, tag, digest = parse_ref(ref)
    if tag is None and digest is None:
        tag = "latest"
    out = domain + "/" + path
    if tag is not None:
        out += ":" + tag
    if digest is not None:
        out += "@" + digest
    return out


def familiar_ref(ref):
    """The short form ``docker images`` shows: ``ubuntu:20.04``, ``nvcr.io/nvidia/pytorch:23.10``."""
    full = normalize_ref(ref)
    if full.startswith("docker.io/"):
        full = full[len("docker.io/"):]
        if full.startswith("library/") and "/" not in full[len("library/"):].split(":")[0].split("@")[0]:
            full = full[len("library/"):]
    return full


def is_latest(ref):
    """True for ``x:latest`` and for references without a tag (which mean latest)."""
    _domain, _path, tag, digest = parse_ref(ref)
    if digest is not None and tag is None:
        return False
    return tag is None or tag == "latest"
