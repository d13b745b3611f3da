# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which names an archive's images must carry, and what to do per image: load, tag, or nothing.

The rules of names: the archive's own tags, plus extra names from a ``retag`` mapping (archive tag
or image ID -> new name) or a prefix; ``:latest`` and untagged images refused unless allowed; an
image is loaded only when the engine lacks its ID, and a name that points elsewhere is retagged.
The module applies them, and so does the role's ``image_preload_present`` filter before any copy.
"""

from __future__ import annotations

import re

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_refs import familiar_ref, is_latest, normalize_ref, parse_ref

MSG_LATEST_HINT = ("use a semantic tag like pytorch-2.1-cuda12.1-ubuntu20.04, "
                   "or set allow_latest: true")
_ID_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{12,64})$")


def _match_id(key, images):
    m = _ID_RE.match(key.strip().lower())
    if not m:
        return None
    hexpart = m.group(1)
    hits = [img for img in images if img["id"].split(":", 1)[1].startswith(hexpart)]
    return hits[0] if len(hits) == 1 else None


def retag_targets(images, retag=None, prefix=None):
    """{image id: [new refs]} from a mapping (archive tag or image ID -> new ref) or a prefix."""
    out = dict((img["id"], []) for img in images)
    if prefix:
        if not prefix.endswith("/"):
            prefix += "/"
        for img in images:
            for tag in img["tags"]:
                new = prefix + familiar_ref(tag)
                parse_ref(new)
                if new not in out[img["id"]]:
                    out[img["id"]].append(new)
    for key, new in (retag or {}).items():
        if not isinstance(new, str) or not new:
            raise ImageArchiveError("retag: the new name for %r must be a non-empty string" % key,
                                    kind="invalid")
        if parse_ref(new)[3] is not None:
            raise ImageArchiveError("retag: %r has a digest; a new name is name:tag" % new, kind="invalid")
        target = None
        try:
            wanted = normalize_ref(key)
        except ImageArchiveError:
            wanted = None
        if wanted is not None:
            for img in images:
                if any(normalize_ref(t) == wanted for t in img["tags"]):
                    target = img
                    break
        if target is None:
            target = _match_id(key, images)
        if target is None:
            have = sorted(set(t for img in images for t in img["tags"])) + [img["id"] for img in images]
            raise ImageArchiveError("retag: %r is neither a tag nor an image ID in the archive (it has: %s)"
                                    % (key, ", ".join(have)), kind="invalid")
        if new not in out[target["id"]]:
            out[target["id"]].append(new)
    return out


def check_latest(images, targets, allow_latest):
    """Refuse ':latest' and untagged references (archive tags and new names) unless allowed."""
    if allow_latest:
        return
    for img in images:
        refs = list(img["tags"]) + list(targets.get(img["id"], []))
        if not refs:
            raise ImageArchiveError("image %s has no tag in the archive: an untagged image cannot be "
                                    "told apart from the next one; name it with retag (%s: name:tag); %s"
                                    % (img["id"], img["id"], MSG_LATEST_HINT), kind="latest")
        for ref in refs:
            if is_latest(ref):
                raise ImageArchiveError("refusing %r: ':latest' (or no tag) names a different image over "
                                        "time; %s" % (ref, MSG_LATEST_HINT), kind="latest", ref=ref)


def plan(images, targets, present_ids, ref_ids, force=False):
    """What to do per image.

    present_ids: the archive's image IDs the engine has. ref_ids: {normalized ref: set of IDs it
    points at}. Returns [{'id', 'tags', 'load' (bool), 'tag' ([refs to point at the id])}].
    """
    out = []
    for img in images:
        image_id = img["id"]
        extra = targets.get(image_id, [])
        present = image_id in present_ids
        load = force or not present

        def missing(refs):
            return [r for r in refs if image_id not in ref_ids.get(normalize_ref(r), ())]

        if load:
            to_tag = missing(extra)          # the load itself sets the archive's tags
        else:
            to_tag = missing(list(img["tags"]) + list(extra))
        seen = set()
        uniq = []
        for ref in to_tag:
            key = normalize_ref(ref)
            if key not in seen:
                seen.add(key)
                uniq.append(ref)
        out.append({"id": image_id, "tags": list(img["tags"]), "load": load, "tag": uniq})
    return out


def wanted_names(image_id, tags, retag=None):
    """Every name (normalized) an image must carry after a load: its archive tags plus the extra names
    that ``retag`` (a prefix string or a mapping) gives it, by the rules of :func:`retag_targets`.

    None when the names cannot be known (a name that does not parse, a retag map key that is not
    one of these tags or this ID): callers treat that as "not known to be present".
    """
    image = {"id": image_id, "tags": list(tags or [])}
    try:
        if isinstance(retag, dict):
            extra = retag_targets([image], retag=retag)[image_id]
        else:
            extra = retag_targets([image], prefix=retag or None)[image_id]
        names = []
        for ref in image["tags"] + extra:
            key = normalize_ref(ref)
            if key not in names:
                names.append(key)
        return names
    except ImageArchiveError:
        return None
