# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load one image archive (``docker save`` or OCI layout) into an engine when needed: the whole job.

Everything here runs on the managed host and uses the Python standard library only, plus the
engine's own CLI (``docker`` or ``ctr``) and ``zstd`` for ``.tar.zst``. Each step lives in its
own file, this one puts them in order:

- ``image_archive_streams``: the file, its compression, the decompressed stream (with its SHA-256);
- ``image_archive_tar``: a strict streaming tar reader;
- ``image_archive_manifest``: ``scan_archive``, the image IDs and tags, without loading;
- ``image_archive_digest``: the user's checksum, whole-file hashing, the mismatch error;
- ``image_archive_cache``: what a read found, per unchanged file;
- ``image_archive_refs`` and ``image_archive_plan``: names, retag rules, ``:latest``, the plan;
- ``image_archive_space``: room for the load;
- ``image_archive_engines``: Docker and containerd through their CLI;
- ``image_archive_load``: the verified stream into the engine's stdin.

Idempotent by image ID (the config digest): an image is loaded only when the engine lacks that ID;
tags that do not point at the ID are fixed with ``docker tag`` / ``ctr images tag``.
"""

from __future__ import annotations

import os

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_cache import ManifestCache, stat_key
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_digest import checksum_mismatch, hash_file, parse_checksum
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_load import ProcessSink, stream_into
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_manifest import scan_archive
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_plan import check_latest, plan, retag_targets
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_refs import normalize_ref
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_space import check_space
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_streams import check_file


def preload(path, engine, checksum=None, retag=None, prefix=None, allow_latest=False, staging_dir=None,
            min_free_bytes=0, force=False, check_mode=False, cache_dir=None, sink_factory=ProcessSink,
            direct_load=True):
    """Load one archive into ``engine`` when needed. Returns the module's result (without msg)."""
    expected = parse_checksum(checksum)
    path = os.path.abspath(path)
    st = check_file(path)
    realpath = os.path.realpath(path)
    cache = ManifestCache(cache_dir) if cache_dir else None
    bytes_read = 0

    info = cache.load(realpath, st) if cache else None
    from_cache = info is not None
    if info is None:
        info = scan_archive(path)
        bytes_read += info["bytes_read"]
    sha_known_before = bool(info.get("sha256"))
    if expected and info.get("sha256") and info["sha256"] != expected:
        raise checksum_mismatch(path, expected, info["sha256"])
    images = info["images"]
    targets = retag_targets(images, retag, prefix)
    check_latest(images, targets, allow_latest)

    all_refs = []
    for img in images:
        all_refs.extend(img["tags"])
        all_refs.extend(targets[img["id"]])
    present, ref_ids = engine.query(images, all_refs)
    steps = plan(images, targets, present, ref_ids, force=force)
    need_load = any(step["load"] for step in steps)

    if expected and not info.get("sha256") and (check_mode or not need_load):
        digest, n = hash_file(path)
        bytes_read += n
        if digest != expected:
            raise checksum_mismatch(path, expected, digest)
        info["sha256"] = digest

    space = None
    if need_load:
        why = engine.can_load(info)
        if why:
            raise ImageArchiveError(why, kind="engine")
        space = check_space(staging_dir or engine.default_staging_dir(), info["uncompressed_size"], min_free_bytes)

    loaded_output = None
    load_mode = None
    if need_load and not check_mode:
        if info["compression"] == "none" and (not expected or info.get("sha256")) and direct_load:
            # nothing left to verify (no checksum asked, or the cache vouches for this very file):
            # the engine reads the file itself, as fast as a plain `docker load -i`. It still checks
            # every layer against the config whose digest is the image ID, and the IDs are checked
            # below.
            load_mode = "direct"
            rc, out, err = engine.run(engine.load_argv(path))
            if rc != 0:
                raise ImageArchiveError("%s load failed (exit %s): %s" % (engine.name, rc, (err or out or "").strip()),
                                        kind="engine", engine_stderr=err)
            loaded_output = (out or "").strip()
        else:
            load_mode = "stream"
            sink = sink_factory(engine.load_argv(), label="%s load" % engine.name)
            try:
                pumped = stream_into(path, info["compression"], sink, expected_sha256=expected,
                                     known_sha256=info.get("sha256"))
            finally:
                sink.close()
            bytes_read += pumped["bytes_read"]
            loaded_output = pumped["output"]
            if not info.get("sha256"):
                info["sha256"] = pumped["sha256"]
        present, ref_ids = engine.query(images, all_refs)
        for step in steps:
            if step["id"] not in present:
                raise ImageArchiveError("%s reported success but image %s is not there (output: %s)"
                                        % (engine.name, step["id"], loaded_output), kind="engine")
        # the load may have left an archive tag elsewhere (e.g. a name already taken): recompute
        steps_after = plan(images, targets, present, ref_ids, force=False)
        for step, after in zip(steps, steps_after):
            step["tag"] = after["tag"]

    results = []
    changed = False
    for step in steps:
        retagged = []
        names = step["tags"] + targets[step["id"]]
        pointing = [r for r in names if step["id"] in ref_ids.get(normalize_ref(r), ())]
        source_ref = (pointing or names or [None])[0]
        for ref in step["tag"]:
            if not check_mode:
                engine.tag(step["id"], ref, source_ref=source_ref)
            retagged.append(ref)
        if step["load"]:
            action = "would_load" if check_mode else "loaded"
        else:
            action = "skipped"
        changed = changed or step["load"] or bool(retagged)
        results.append({"id": step["id"], "tags": step["tags"], "action": action, "retagged": retagged})

    if cache and not check_mode and (not from_cache or (info.get("sha256") and not sha_known_before)):
        try:
            if stat_key(os.stat(path)) == stat_key(st):
                cache.store(realpath, st, info)
        except OSError:
            pass

    loaded = sum(1 for r in results if r["action"] in ("loaded", "would_load"))
    return {
        "changed": changed,
        "images": results,
        "loaded": loaded,
        # not "skipped": a truthy "skipped" in a task result makes Ansible report the task as
        # skipped (and drop its handler notifications), whatever "changed" says
        "skipped_count": sum(1 for r in results if r["action"] == "skipped"),
        "bytes_read": bytes_read,
        "archive": {
            "path": path,
            "format": info["format"],
            "compression": info["compression"],
            "size": info["size"],
            "uncompressed_size": info["uncompressed_size"],
            "sha256": ("sha256:" + info["sha256"]) if info.get("sha256") else None,
            "from_cache": from_cache,
        },
        "engine": engine.name,
        "load_mode": load_mode,
        "space": space,
    }
