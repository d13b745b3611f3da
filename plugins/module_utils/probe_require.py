# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a lab needs from a mirror: pinned items (``gpulab_mirror_require``), parsed and matched.

Pure functions, standard library only (runs on the managed host inside mirror_probe).

- PyPI ``name==version``: a file of that project and version is listed. Names are normalised
  (PEP 503), wheel and sdist filenames are parsed (never substring-matched) and versions compared
  as PEP 440 does for ``==``: ``2.5`` equals ``2.5.0``, and ``torch==2.5.1`` accepts
  ``2.5.1+cu121`` (a local label is ignored unless the pin has one).
- conda ``name=version`` (conda's fuzzy match: ``2.5.1`` or ``2.5.1.*``) or ``name==version``
  (exact), in the channel/subdir repodata (``packages`` and ``packages.conda``).
- docker ``repository:tag`` (never ``latest``) or ``repository@digest``: its manifest resolves.
"""

from __future__ import annotations

import re

from urllib.parse import unquote, urlsplit

PYPI_PIN = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*==\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)\s*$")
CONDA_PIN = re.compile(r"^\s*([a-z0-9_][a-z0-9_.-]*)\s*(==|=)\s*([A-Za-z0-9_][A-Za-z0-9_.+!-]*)\s*$")
# PEP 440, appendix B (the canonical public version regex), plus the local label.
_PEP440 = re.compile(
    r"^\s*v?(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?P<pre>[-_.]?(?P<pre_l>a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?P<pre_n>[0-9]+)?)?"
    r"(?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?"
    r"(?P<dev>[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$",
    re.IGNORECASE,
)
_PRE_NAMES = {"alpha": "a", "beta": "b", "c": "rc", "pre": "rc", "preview": "rc"}
# Bounds on a pinned item, so a typo or a hostile value is refused with the variable's name before any
# parsing: Python's int() refuses more than 4300 digits with an error that names nothing, and a long
# string costs the pin regexes time. The longest version on PyPI is well under 64 characters; a
# Docker reference is at most 255 (repository) + 129 (tag) characters.
MAX_VERSION_CHARS = 64
MAX_ITEM_CHARS = 512
MAX_ITEMS = 64
_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")


class RequirementError(ValueError):
    """A ``gpulab_mirror_require`` item that cannot be checked (the message says how to write it)."""


def normalize_name(name):
    """PEP 503 name normalization: ``Zope.Interface`` -> ``zope-interface``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_version(text):
    """A PEP 440 version as ``(public_key, local)``, or None when it is not one.

    ``public_key`` compares equal for equal versions: trailing ``.0`` release parts dropped,
    spellings normalised (``1.0RC1`` == ``1.0rc1``, ``1.0-1`` == ``1.0.post1``).
    """
    if not isinstance(text, str) or len(text) > MAX_VERSION_CHARS:
        return None  # not a version this module compares (a mirror's file may be called anything)
    match = _PEP440.match(text)
    if not match:
        return None
    release = [int(part) for part in match.group("release").split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    pre = None
    if match.group("pre"):
        label = match.group("pre_l").lower()
        pre = (_PRE_NAMES.get(label, label), int(match.group("pre_n") or 0))
    post = None
    if match.group("post"):
        post = int(match.group("post_n1") or match.group("post_n2") or 0)
    dev = int(match.group("dev_n") or 0) if match.group("dev") else None
    local = match.group("local")
    local = tuple(re.split(r"[-_.]", local.lower())) if local else None
    return (int(match.group("epoch") or 0), tuple(release), pre, post, dev), local


def version_matches(pinned, candidate):
    """PEP 440 ``==pinned`` against a file's version (no wildcard)."""
    want = parse_version(pinned)
    have = parse_version(candidate)
    if want is None or have is None:
        return (pinned or "").strip().lower() == (candidate or "").strip().lower()
    if want[0] != have[0]:
        return False
    return want[1] is None or want[1] == have[1]


def dist_of(filename):
    """``(normalised project, version)`` of a wheel or sdist filename, or None.

    Wheels: ``{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`` (names escape ``-`` as
    ``_``). Sdists: ``{name}-{version}.tar.gz`` (legacy names may hold ``-``: the version is
    after the last one).
    """
    name = unquote(filename or "").strip()
    lower = name.lower()
    if lower.endswith(".whl"):
        parts = name[:-4].split("-")
        if len(parts) not in (5, 6):
            return None
        return normalize_name(parts[0]), parts[1]
    for suffix in _SDIST_SUFFIXES:
        if lower.endswith(suffix):
            stem = name[:-len(suffix)]
            if "-" not in stem:
                return None
            project, version = stem.rsplit("-", 1)
            return normalize_name(project), version
    return None


def filename_of(href):
    """The filename at the end of a simple-page link (fragment and query dropped)."""
    return unquote(urlsplit(href).path.rsplit("/", 1)[-1])


def check_length(item):
    """RequirementError when ``item`` is longer than MAX_ITEM_CHARS (checked before any regex)."""
    if isinstance(item, str) and len(item) > MAX_ITEM_CHARS:
        raise RequirementError("%r... is %d characters long; a pinned item has at most %d"
                               % (item[:40], len(item), MAX_ITEM_CHARS))


def _check_version(item, version):
    if len(version) > MAX_VERSION_CHARS:
        raise RequirementError("the version of %r... is %d characters long; a pinned version has at most %d"
                               % (item[:40], len(version), MAX_VERSION_CHARS))


def parse_pypi(item):
    """``"torch==2.5.1"`` -> ``(normalised name, version)``."""
    check_length(item)
    match = PYPI_PIN.match(item) if isinstance(item, str) else None
    if match:
        _check_version(item, match.group(2))
    if not match or parse_version(match.group(2)) is None:
        raise RequirementError("%r is not a pinned PyPI requirement; write name==version, e.g. torch==2.5.1" % (item,))
    return normalize_name(match.group(1)), match.group(2)


def parse_conda(item):
    """``"pytorch=2.5.1"`` -> ``(name, version, exact)``; ``==`` is exact, ``=`` also takes ``2.5.1.*``."""
    check_length(item)
    match = CONDA_PIN.match(item) if isinstance(item, str) else None
    if match:
        _check_version(item, match.group(3))
    if not match:
        raise RequirementError("%r is not a pinned conda requirement; write name=version, e.g. pytorch=2.5.1" % (item,))
    return match.group(1), match.group(3), match.group(2) == "=="


def pypi_lists(filenames, name, version):
    """True when a file of ``name`` at ``version`` is among ``filenames``."""
    for filename in filenames:
        dist = dist_of(filename)
        if dist is not None and dist[0] == name and version_matches(version, dist[1]):
            return True
    return False


def conda_lists(repodata, name, version, exact):
    """True when ``repodata`` (a parsed repodata.json) has ``name`` at ``version``."""
    if not isinstance(repodata, dict):
        return False
    for key in ("packages", "packages.conda"):
        packages = repodata.get(key)
        if not isinstance(packages, dict):
            continue
        for record in packages.values():
            if not isinstance(record, dict) or record.get("name") != name:
                continue
            have = str(record.get("version", ""))
            if have == version or (not exact and have.startswith(version + ".")):
                return True
    return False
