# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engines an archive is loaded into, through their CLI: Docker (``docker``) and containerd (``ctr``).

Each engine answers which of the archive's image IDs it has and which names point at them, loads
(``load_argv``) and tags. The CLI is run through an injected ``run(argv) -> (rc, stdout, stderr)``.
"""

from __future__ import annotations

import json

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_refs import normalize_ref

# What ``docker image inspect --format`` prints per image: the role's present check asks the same.
DOCKER_INSPECT_FORMAT = "{{json .Id}}\t{{json .RepoTags}}"


def parse_docker_inspect(out):
    """{image ID: [normalized names]} from ``docker image inspect --format DOCKER_INSPECT_FORMAT`` output.

    Names that do not parse as references are left out; a line that is not the format's is an
    ImageArchiveError(kind='engine').
    """
    found = {}
    for line in (out or "").splitlines():
        if not line.strip():
            continue
        try:
            found_id, tags = line.split("\t", 1)
            found_id = json.loads(found_id)
            tags = json.loads(tags) or []
        except ValueError:
            raise ImageArchiveError("unexpected output from docker image inspect: %r" % line, kind="engine")
        if not isinstance(found_id, str) or not isinstance(tags, list):
            raise ImageArchiveError("unexpected output from docker image inspect: %r" % line, kind="engine")
        names = found.setdefault(found_id, [])
        for tag in tags:
            try:
                key = normalize_ref(tag)
            except ImageArchiveError:
                continue
            if key not in names:
                names.append(key)
    return found


class DockerEngine(object):
    name = "docker"

    def __init__(self, run, docker="docker"):
        self.run = run
        self.docker = docker

    def _no_such(self, line):
        return "no such image" in line.lower() or "no such object" in line.lower()

    def query(self, images, refs):
        """(present archive IDs, {normalized ref: {archive IDs it points at}})."""
        alias = {}
        for img in images:
            alias[img["id"]] = img["id"]
            for digest in img.get("digests", []):
                alias[digest] = img["id"]
        argv = [self.docker, "image", "inspect", "--format", DOCKER_INSPECT_FORMAT] + list(alias)
        rc, out, err = self.run(argv)
        bad = [line for line in (err or "").splitlines() if line.strip() and not self._no_such(line)]
        if rc != 0 and bad:
            raise ImageArchiveError("docker image inspect failed: %s" % "\n".join(bad), kind="engine")
        present = set()
        ref_ids = {}
        for found_id, tags in parse_docker_inspect(out).items():
            image_id = alias.get(found_id)
            if image_id is None:
                continue
            present.add(image_id)
            for tag in tags:
                ref_ids.setdefault(tag, set()).add(image_id)
        return present, ref_ids

    def default_staging_dir(self):
        rc, out, _err = self.run([self.docker, "info", "--format", "{{.DockerRootDir}}"])
        root = (out or "").strip()
        return root if rc == 0 and root.startswith("/") else "/var/lib/docker"

    def can_load(self, info):
        """Docker's classic image store reads manifest.json only; OCI-only archives need containerd."""
        if info["format"] != "oci":
            return None
        rc, out, _err = self.run([self.docker, "info", "--format", "{{json .DriverStatus}}"])
        if rc == 0 and "io.containerd.snapshotter" in (out or ""):
            return None
        return ("this is an OCI-only archive (index.json, no manifest.json): Docker's classic image store "
                "cannot load it; use engine: containerd, or an archive written by docker save")

    def load_argv(self, path=None):
        return [self.docker, "load"] + (["-i", path] if path else [])

    def tag(self, image_id, ref, source_ref=None):
        rc, _out, err = self.run([self.docker, "tag", image_id, ref])
        if rc != 0:
            raise ImageArchiveError("docker tag %s %s failed: %s" % (image_id, ref, (err or "").strip()),
                                    kind="engine")


class ContainerdEngine(object):
    name = "containerd"

    def __init__(self, run, ctr="ctr", namespace="k8s.io", address=None):
        self.run = run
        self.base = [ctr] + (["--address", address] if address else []) + ["--namespace", namespace]
        self.namespace = namespace
        self.raw_names = {}

    def list_images(self):
        rc, out, err = self.run(self.base + ["images", "ls"])
        if rc != 0:
            raise ImageArchiveError("ctr images ls failed: %s" % (err or out or "").strip(), kind="engine")
        found = {}
        for line in (out or "").splitlines()[1:]:
            cols = line.split()
            if len(cols) < 3:
                continue
            ref, mediatype, digest = cols[0], cols[1], cols[2]
            try:
                key = normalize_ref(ref)
            except ImageArchiveError:
                continue
            found[key] = (ref, mediatype, digest)
        return found

    def _content(self, digest):
        rc, out, _err = self.run(self.base + ["content", "get", digest])
        if rc != 0:
            return None
        try:
            doc = json.loads(out)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def _config_ids(self, digest, depth=0):
        doc = self._content(digest)
        if doc is None or depth > 3:
            return set()
        if "manifests" in doc:
            out = set()
            for child in doc.get("manifests") or []:
                if isinstance(child, dict) and isinstance(child.get("digest"), str):
                    out |= self._config_ids(child["digest"], depth + 1)
            return out
        cfg = (doc.get("config") or {}).get("digest")
        return {cfg} if isinstance(cfg, str) else set()

    def query(self, images, refs):
        found = self.list_images()
        present = set()
        ref_ids = {}
        resolved = {}
        for ref in refs:
            key = normalize_ref(ref)
            if key not in found:
                continue
            raw, _mediatype, digest = found[key]
            self.raw_names[key] = raw
            if digest not in resolved:
                ids = set()
                for img in images:
                    if digest == img["id"] or digest in img.get("digests", []):
                        ids.add(img["id"])
                if not ids:
                    configs = self._config_ids(digest)
                    ids = set(img["id"] for img in images if img["id"] in configs)
                resolved[digest] = ids
            ref_ids[key] = set(resolved[digest])
            present |= resolved[digest]
        return present, ref_ids

    def default_staging_dir(self):
        return "/var/lib/containerd"

    def can_load(self, info):
        return None

    def load_argv(self, path=None):
        return self.base + ["images", "import", path or "-"]

    def tag(self, image_id, ref, source_ref=None):
        if not source_ref:
            raise ImageArchiveError("containerd: image %s has no name to tag %s from" % (image_id, ref),
                                    kind="engine")
        src = self.raw_names.get(normalize_ref(source_ref), normalize_ref(source_ref))
        rc, out, err = self.run(self.base + ["images", "tag", "--force", src, normalize_ref(ref)])
        if rc != 0:
            raise ImageArchiveError("ctr images tag %s %s failed: %s" % (src, ref, (err or out or "").strip()),
                                    kind="engine")
