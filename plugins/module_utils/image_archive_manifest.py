# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image archive's manifest read without loading it: image IDs, tags and digests.

``docker save`` writes ``manifest.json`` (the image ID is the digest of the ``Config`` file, tags
come from ``RepoTags``); an OCI layout writes ``index.json`` (names in annotations, the config
digest in the manifest blob); Docker 25+ writes both, and both are read and merged. Only
``manifest.json``, ``index.json`` and blobs small enough to be manifests are held in memory.
"""

from __future__ import annotations

import json
import platform
import re

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_refs import normalize_ref, parse_ref
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_streams import check_file, detect_compression, drain_count, open_archive
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_tar import JSON_MAX, TarBytes, iter_tar

SMALL_BLOB_MAX = 4 << 20   # registries cap manifests at 4 MiB; bigger blobs are layers
MSG_NOT_IMAGE = "no manifest.json or index.json: not a docker save / OCI archive"
MEDIA_INDEX = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


def _load_json(member):
    data = member.read(JSON_MAX)
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageArchiveError("%s is not valid JSON: %s" % (member.name, exc), kind="not_image")


class _Collector(object):
    """Keeps what the manifest needs from a single pass over the members."""

    def __init__(self):
        self.manifest_json = None
        self.index_json = None
        self.oci_layout = False
        self.blobs = {}
        self.members = 0

    def visit(self, member):
        self.members += 1
        name = member.name
        if name == "manifest.json":
            self.manifest_json = _load_json(member)
        elif name == "index.json":
            self.index_json = _load_json(member)
        elif name == "oci-layout":
            self.oci_layout = True
        elif name.startswith("blobs/") and 0 < member.size <= SMALL_BLOB_MAX:
            parts = name.split("/")
            if len(parts) != 3:
                return
            data = member.read(SMALL_BLOB_MAX)
            if data[:1] != b"{":
                return
            try:
                doc = json.loads(data.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return
            if isinstance(doc, dict) and ("manifests" in doc or ("config" in doc and "layers" in doc)):
                self.blobs["%s:%s" % (parts[1], parts[2])] = doc


def _host_arch():
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def _config_id(value, where):
    """Image ID from manifest.json's Config: '<hex>.json' (classic) or 'blobs/sha256/<hex>' (25+)."""
    if not isinstance(value, str) or not value:
        raise ImageArchiveError("%s: entry without a Config" % where, kind="not_image")
    parts = value.split("/")
    hexpart = parts[-1]
    if hexpart.endswith(".json"):
        hexpart = hexpart[:-len(".json")]
    algo = parts[-2] if len(parts) >= 3 and parts[-3] == "blobs" else "sha256"
    if algo != "sha256" or not re.match(r"^[0-9a-f]{64}$", hexpart):
        raise ImageArchiveError("%s: cannot read an image ID from Config %r" % (where, value),
                                kind="not_image")
    return "sha256:" + hexpart


def _names_from_annotations(annotations):
    """Full references from an index.json descriptor; a bare tag ('1.0') names no repository."""
    out = []
    if not isinstance(annotations, dict):
        return out
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = annotations.get(key)
        if not isinstance(value, str) or not value:
            continue
        if key.startswith("org.") and not ("/" in value or ":" in value):
            continue
        if "@" in value:
            continue  # a digest reference is not a name the engine can tag
        try:
            parse_ref(value)
        except ImageArchiveError:
            continue
        out.append(value)
    return out


def _resolve_descriptor(desc, blobs, depth=0):
    """[(manifest digest, config digest, platform)] for a descriptor of index.json."""
    digest = desc.get("digest") if isinstance(desc, dict) else None
    doc = blobs.get(digest)
    if doc is None:
        return []
    if "manifests" in doc or desc.get("mediaType") in MEDIA_INDEX:
        if depth > 4:
            return []
        out = []
        for child in doc.get("manifests") or []:
            if not isinstance(child, dict):
                continue
            ann = child.get("annotations") or {}
            if ann.get("vnd.docker.reference.type") == "attestation-manifest":
                continue
            out.extend(_resolve_descriptor(child, blobs, depth + 1))
        return out
    config = doc.get("config") or {}
    cfg_digest = config.get("digest")
    if not isinstance(cfg_digest, str) or not cfg_digest.startswith("sha256:"):
        return []
    plat = desc.get("platform") or config.get("platform") or {}
    return [(digest, cfg_digest, plat if isinstance(plat, dict) else {})]


def _add_tag(image, ref):
    try:
        key = normalize_ref(ref)
    except ImageArchiveError:
        return
    if key not in image["_keys"]:
        image["_keys"].add(key)
        image["tags"].append(ref)


def images_from_manifests(collector, arch=None):
    """The archive's images: [{'id', 'tags', 'digests'}] from manifest.json and/or index.json."""
    if collector.manifest_json is None and collector.index_json is None:
        raise ImageArchiveError(MSG_NOT_IMAGE, kind="not_image")
    arch = arch or _host_arch()
    images = []
    by_id = {}
    if collector.manifest_json is not None:
        if not isinstance(collector.manifest_json, list):
            raise ImageArchiveError("manifest.json is not a list of images", kind="not_image")
        for n, entry in enumerate(collector.manifest_json):
            if not isinstance(entry, dict):
                raise ImageArchiveError("manifest.json entry %d is not an object" % n, kind="not_image")
            image_id = _config_id(entry.get("Config"), "manifest.json entry %d" % n)
            image = by_id.get(image_id)
            if image is None:
                image = {"id": image_id, "tags": [], "digests": [], "_keys": set()}
                by_id[image_id] = image
                images.append(image)
            for tag in entry.get("RepoTags") or []:
                if isinstance(tag, str):
                    _add_tag(image, tag)
    if collector.index_json is not None:
        index = collector.index_json
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise ImageArchiveError("index.json has no manifests list", kind="not_image")
        for n, desc in enumerate(index["manifests"]):
            resolved = _resolve_descriptor(desc, collector.blobs)
            if not resolved:
                if collector.manifest_json is not None:
                    continue  # docker 25+: manifest.json already describes the image
                raise ImageArchiveError("index.json entry %d (%s) points at a manifest that is not in the "
                                        "archive" % (n, desc.get("digest") if isinstance(desc, dict) else desc),
                                        kind="not_image")
            chosen = resolved[0]
            for item in resolved:
                plat = item[2]
                if plat.get("architecture") == arch and plat.get("os", "linux") == "linux":
                    chosen = item
                    break
            image_id = chosen[1]
            if collector.manifest_json is not None:
                # a docker 25+ archive: match the index entry to the manifest.json image
                for item in resolved:
                    if item[1] in by_id:
                        image_id = item[1]
                        break
            image = by_id.get(image_id)
            if image is None:
                image = {"id": image_id, "tags": [], "digests": [], "_keys": set()}
                by_id[image_id] = image
                images.append(image)
            for digest in [desc.get("digest")] + [item[0] for item in resolved]:
                if isinstance(digest, str) and digest not in image["digests"] and digest != image_id:
                    image["digests"].append(digest)
            for ref in _names_from_annotations(desc.get("annotations")):
                _add_tag(image, ref)
    if not images:
        raise ImageArchiveError("the archive lists no images (empty manifest)", kind="not_image")
    for image in images:
        del image["_keys"]
    return images


def _archive_format(collector):
    if collector.manifest_json is not None and collector.index_json is not None:
        return "docker+oci"
    return "docker" if collector.manifest_json is not None else "oci"


def scan_archive(path, compression=None):
    """Read the archive's manifest without loading it.

    Returns a dict: format, compression, size, uncompressed_size, sha256 (None for a plain tar,
    whose headers are read by seeking), images, bytes_read.
    """
    check_file(path)
    if compression is None:
        compression = detect_compression(path)
    plain = compression == "none"
    source = open_archive(path, compression, hashing=not plain)
    raw = source.raw
    try:
        tb = TarBytes(raw, seek_size=raw.size) if plain else TarBytes(source)
        collector = _Collector()
        for member in iter_tar(tb):
            collector.visit(member)
        images = images_from_manifests(collector)
        if plain:
            uncompressed = raw.size
            sha = None
        else:
            uncompressed = tb.pos + drain_count(source)
            source.finish()
            sha = raw.hexdigest()
        return {
            "format": _archive_format(collector),
            "compression": compression,
            "size": raw.size,
            "uncompressed_size": uncompressed,
            "sha256": sha,
            "images": images,
            "bytes_read": raw.bytes_read,
        }
    finally:
        source.close()
        raw.close()
