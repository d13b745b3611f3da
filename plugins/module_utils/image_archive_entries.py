# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_preload role's request: which archives, from where, staged where, and which are already there.

Pure functions behind the filters ``image_preload_entries`` and ``image_preload_present`` (run on
the controller). Checksums, names and retag rules are the module's own (``image_archive_digest``,
``image_archive_plan``, ``image_archive_engines``), so the role and the module cannot disagree on
what "present with every name" means. Errors are ``ValueError`` naming the variable and the entry.
"""

from __future__ import annotations

import posixpath

from urllib.parse import quote, urlsplit

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_digest import parse_checksum
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_engines import parse_docker_inspect
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_fetch import check_fetch_url
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_plan import wanted_names
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import mask_url

SOURCES = ("controller", "host", "url")


def _given(entry, key):
    """entry[key] unless it is missing, None or ''."""
    value = entry.get(key)
    return None if value is None or value == "" else value


def _kit_entries(manifest, manifest_path, manifest_source, manifest_base):
    """The kit manifest's images as role entries (path or url filled in from where the kit is)."""
    where = "image_preload_manifest %s" % manifest_path
    if not isinstance(manifest, dict) or not isinstance(manifest.get("images"), list):
        raise ValueError("%s is not a kit manifest written by playbooks/bundle.yml (a mapping with an `images` list)"
                         % where)
    if manifest_source not in SOURCES:
        raise ValueError("image_preload_manifest_source must be one of %s, got %r" % (", ".join(SOURCES), manifest_source))
    base = (manifest_base or "").rstrip("/")
    if manifest_source != "controller" and not base:
        raise ValueError("image_preload_manifest_source is %s: set image_preload_manifest_base to the kit directory on "
                         "the host (host) or the URL the kit files sit under (url)" % manifest_source)
    out = []
    for n, e in enumerate(manifest["images"]):
        if not isinstance(e, dict):
            raise ValueError("%s: images[%d] is not a mapping" % (where, n))
        fname = str(e.get("file") or "")
        entry = {"name": e.get("name") or fname, "source": manifest_source, "checksum": e.get("sha256") or "",
                 "id": e.get("id") or "", "refs": e.get("refs") or [], "size": e.get("size") or 0,
                 "from_manifest": True, "_where": "%s images[%d]" % (where, n)}
        if manifest_source == "controller":
            entry["path"] = posixpath.dirname(manifest_path) + "/" + fname
        elif manifest_source == "host":
            entry["path"] = base + "/" + fname
        else:
            entry["url"] = base + "/" + quote(fname, safe="/")
        out.append(entry)
    return out


def _entry(e, where, staging, retag, allow_latest):
    """One validated role entry; a list of problems instead when it is invalid."""
    problems = []
    source = _given(e, "source") or "controller"
    src = str((_given(e, "url") if source == "url" else _given(e, "path")) or "")
    fname = posixpath.basename(urlsplit(src).path if source == "url" else src) if src else ""
    name = str(_given(e, "name") or fname)
    label = "%s (%s)" % (where, name) if name else where
    checksum = str(_given(e, "checksum") or _given(e, "sha256") or "").strip()
    try:
        hexpart = parse_checksum(checksum)
    except ImageArchiveError as exc:
        problems.append(exc.msg)
        hexpart = None
    if source not in SOURCES:
        problems.append("source must be one of %s, got %r" % (", ".join(SOURCES), source))
    elif not src:
        problems.append("set %s" % ("url" if source == "url" else "path"))
    elif source == "host" and not src.startswith("/"):
        problems.append("path must be absolute for source host, got %r" % src)
    elif source == "url":
        try:
            check_fetch_url(src)
        except ImageArchiveError as exc:
            problems.append(exc.msg)
    if src and not fname:
        problems.append("%s names no file" % ("url" if source == "url" else "path"))
    if source in ("controller", "url") and hexpart is None and not problems:
        problems.append("checksum (sha256:<64 hex>) is required for source %s" % source)
    entry_retag = _given(e, "retag") or retag or ""
    if not isinstance(entry_retag, (str, dict)):
        problems.append("retag must be a prefix string or a mapping {archive tag or image ID: new name}")
    if problems:
        return label, None, problems
    staged = (staging + "/" + fname) if source in ("controller", "url") else ""
    allow = e.get("allow_latest")
    return label, {
        "name": name,
        "source": source,
        # a url is kept masked here: loop items are printed whole when a task fails (see source_urls)
        "src": mask_url(src) if source == "url" else src,
        "_url": src if source == "url" else None,
        "checksum": ("sha256:" + hexpart) if hexpart else "",
        "file": fname,
        "staged": staged,
        "archive": staged or src,
        "retag": entry_retag,
        "allow_latest": bool(allow_latest if allow is None else allow),
        "id": str(e.get("id") or ""),
        "refs": list(e.get("refs") or []),
        "size": int(e.get("size") or 0),
        "from_manifest": bool(e.get("from_manifest", False)),
        # what loop labels and messages show: never a credential
        "label": "%s: %s" % (name, mask_url(src) if source == "url" else src),
    }, []


def _all_entries(images, manifest, manifest_path, manifest_source, manifest_base, staging_dir, retag, allow_latest):
    if not isinstance(images, list):
        raise ValueError("image_preload_images must be a list of mappings")
    staging = str(staging_dir or "").rstrip("/")
    if not staging.startswith("/"):
        raise ValueError("image_preload_staging_dir must be an absolute path, got %r" % staging_dir)
    raw = []
    for n, e in enumerate(images):
        if not isinstance(e, dict):
            raise ValueError("image_preload_images[%d] is not a mapping" % n)
        raw.append(dict(e, _where="image_preload_images[%d]" % n))
    if manifest_path:
        raw.extend(_kit_entries(manifest, manifest_path, manifest_source, manifest_base))
    entries = []
    problems = []
    for e in raw:
        label, entry, errors = _entry(e, e["_where"], staging, retag, allow_latest)
        problems.extend("%s: %s" % (label, err) for err in errors)
        if entry is not None:
            entries.append(entry)
    seen_names = {}
    seen_staged = {}
    for entry in entries:
        if entry["name"] in seen_names:
            problems.append("two entries are named %r: names must be unique (set name)" % entry["name"])
        seen_names[entry["name"]] = True
        if entry["staged"]:
            if entry["staged"] in seen_staged:
                problems.append("%s and %s would both be staged as %s: give the files different names"
                                % (seen_staged[entry["staged"]], entry["name"], entry["staged"]))
            seen_staged[entry["staged"]] = entry["name"]
    if problems:
        raise ValueError("image_preload: " + "; ".join(problems))
    return entries


def preload_entries(images, manifest=None, manifest_path="", manifest_source="controller", manifest_base="",
                    staging_dir="/var/lib/gpulab/images", retag="", allow_latest=False):
    """The role's list of archives from ``image_preload_images`` and an optional kit manifest.

    Each entry: name, source, src (a url masked), checksum (``sha256:<hex>`` or ''), file, staged
    (path in the staging directory, '' for host sources), archive (what the module reads), retag,
    allow_latest, id, refs, size, from_manifest, label (masked). Raises ValueError listing every
    problem. No entry holds a url's credentials: Ansible prints a failed loop item whole.
    """
    entries = _all_entries(images, manifest, manifest_path, manifest_source, manifest_base, staging_dir, retag,
                           allow_latest)
    for entry in entries:
        del entry["_url"]
    return entries


def source_urls(images, manifest=None, manifest_path="", manifest_source="controller", manifest_base="",
                staging_dir="/var/lib/gpulab/images", retag="", allow_latest=False):
    """{entry name: the url as given, credentials included} for the url sources of the same list as
    :func:`preload_entries` (same arguments). Only for the download module's ``url`` argument, set
    in a ``no_log`` task."""
    entries = _all_entries(images, manifest, manifest_path, manifest_source, manifest_base, staging_dir, retag,
                           allow_latest)
    return dict((entry["name"], entry["_url"]) for entry in entries if entry["_url"])


def mark_present(entries, inspect_output="", engine="docker", force=False):
    """Each entry with ``present``: the engine has its image ID (known in advance, from a kit manifest)
    under every name a load would give it (its refs plus the retag names, by the module's rules).

    ``inspect_output`` is what ``docker image inspect --format DOCKER_INSPECT_FORMAT <ids>`` printed
    ('' when it did not run). Anything uncertain (no ID, no refs, containerd, force, a retag map
    that does not apply, output that does not parse) is not present: the module then decides by
    reading the archive itself.
    """
    have = {}
    if engine == "docker" and not force:
        try:
            have = parse_docker_inspect(inspect_output)
        except ImageArchiveError:
            have = {}
    out = []
    for entry in entries:
        present = False
        image_id = entry.get("id")
        if image_id and image_id in have and entry.get("refs"):
            names = wanted_names(image_id, entry["refs"], entry.get("retag"))
            present = names is not None and all(name in have[image_id] for name in names)
        out.append(dict(entry, present=present))
    return out


def _loop_results(registered):
    if isinstance(registered, dict):
        registered = registered.get("results")
    return [r for r in (registered or []) if isinstance(r, dict)]


def fetch_list(staged, local=None):
    """The entries whose staged file is missing or lacks their checksum, each with ``fetch_size``.

    staged: what ``ansible.builtin.stat`` (sha256) registered per entry to stage (``item`` is the
    entry); local: what the stat of the controller files registered (``item`` is a staged result).
    ``fetch_size`` is the controller file's size when it was measured, else the entry's ``size``
    (kit manifests carry it for url sources); the staging free-space check adds them up.
    """
    sizes = {}
    for r in _loop_results(local):
        entry = (r.get("item") or {}).get("item") or {}
        st = r.get("stat") or {}
        if st.get("exists") and "size" in st:
            sizes[entry.get("name")] = int(st["size"])
    out = []
    for r in _loop_results(staged):
        entry = r.get("item") or {}
        have = (r.get("stat") or {}).get("checksum")
        if have and "sha256:" + have == entry.get("checksum"):
            continue
        out.append(dict(entry, fetch_size=sizes.get(entry.get("name"), int(entry.get("size") or 0))))
    return out
