#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_archive
short_description: Load a docker save or OCI image archive into Docker or containerd, idempotently
version_added: "1.0.0"
description:
  - Loads an image archive that is already on the host (a C(docker save) tar or an OCI image
    layout tar, optionally compressed) into Docker with C(docker load), or into containerd with
    C(ctr images import), so jobs start without any registry or network.
  - Reads the archive's own manifest without loading it. For C(docker save) archives that is
    C(manifest.json) (the image ID is the digest of the C(Config) file, tags come from
    C(RepoTags)); for OCI archives C(index.json) with the C(io.containerd.image.name) and
    C(org.opencontainers.image.ref.name) annotations, and the config digest from the manifest
    blob. Docker 25+ writes both; both are read and merged.
  - Idempotent by image ID. The engine is asked which of the archive's image IDs it has and which
    tags point at them; the archive is loaded only when an image ID is missing (or O(force)).
    Tags that do not point at the right ID are fixed with C(docker tag) / C(ctr images tag)
    instead of a reload. With nothing to do the task reports C(changed=false).
  - Streams in constant memory whatever the size. C(.tar), C(.tar.gz)/C(.tgz), C(.tar.zst),
    C(.tar.xz) and C(.tar.bz2) are recognised by their first bytes. gzip, xz and bzip2 are
    decompressed by the Python standard library, zstd through a C(zstd -dc) pipe. Only
    C(manifest.json), C(index.json) and blobs small enough to be manifests are held in memory.
  - One read of a compressed archive gives both its SHA-256 and its manifest. For an uncompressed
    tar only the tar headers and small JSON members are read (by seeking); its checksum is taken
    while it is streamed into the engine.
  - Nothing is staged on disk by this module. The decompressed tar goes straight into the engine's
    stdin. The last bytes of the stream (1 MiB or more) are held back until the whole file has
    been read and its SHA-256 matches O(checksum) (and the digest of the manifest read, so a file
    changed in between is refused). On a mismatch the engine is stopped before it sees the end of
    the tar, so it loads nothing.
  - An uncompressed tar with nothing left to verify (no O(checksum), or a checksum the manifest
    cache already verified for this very file) is handed to the engine by path
    (C(docker load -i), C(ctr images import <path>)), as fast as loading it by hand. The engine
    still checks every layer against the image config, whose digest is the image ID that the
    module checks after the load.
  - What a read found (image IDs, tags, SHA-256) is cached per archive, keyed by path, inode,
    size, mtime and ctime (see O(manifest_cache)). A re-run on an unchanged archive reads none of
    it and only asks the engine about the image IDs.
  - Runs on the managed host with the Python standard library and the engine's CLI (C(docker) or
    C(ctr)); no Docker SDK is needed.
author:
  - gpulab.provision maintainers (@gpulab)
options:
  path:
    description:
      - Path of the archive on the managed host.
    type: path
    required: true
  checksum:
    description:
      - Expected SHA-256 of the archive file, as C(sha256:<hex>) or bare hex.
      - Verified, by streaming, before anything is loaded; on a mismatch the task fails naming
        the expected and the actual digest and loads nothing.
      - Without it no checksum is enforced (the digest is still computed and returned when the
        file was read in full).
    type: str
  engine:
    description:
      - Where to load the images.
      - V(docker) runs C(docker load) (from stdin) and C(docker tag).
      - V(containerd) runs C(ctr images import -) in the O(containerd_namespace) namespace
        (C(k8s.io), the namespace the Kubernetes CRI uses), and C(ctr images tag --force). Names
        are stored fully qualified (C(docker.io/library/ubuntu:20.04)).
    type: str
    choices: [docker, containerd]
    default: docker
  retag:
    description:
      - Extra names for the archive's images, as a mapping from an original reference (a tag in
        the archive, or an image ID C(sha256:<hex>) or its first 12+ hex digits) to a new
        reference. The archive's own tags are kept.
      - Each new name is applied with C(docker tag) / C(ctr images tag) only when it does not
        already point at the image.
      - A key that matches nothing in the archive is an error.
      - Mutually exclusive with O(prefix).
    type: dict
  prefix:
    description:
      - Prepended to every tag of the archive (in its short form, as C(docker images) shows it) to
        make an extra name, for example V(registry.lab.internal/mirror/) turns C(ubuntu:20.04) into
        C(registry.lab.internal/mirror/ubuntu:20.04). A missing trailing C(/) is added.
      - Mutually exclusive with O(retag).
    type: str
    aliases: [retag_prefix]
  allow_latest:
    description:
      - By default references tagged C(:latest), or without a tag (which means latest), and images
        with no tag at all are refused, whether they come from the archive or from O(retag) /
        O(prefix); the message asks for a semantic tag such as
        C(pytorch-2.1-cuda12.1-ubuntu20.04).
      - Set to V(true) to allow them.
    type: bool
    default: false
  staging_dir:
    description:
      - Directory whose file system must have room for the load. The engine unpacks the stream
        once into a temporary directory and once into its image store, so the check asks for
        twice the uncompressed archive size plus O(min_free_bytes).
      - Defaults to Docker's root directory (C(docker info) C(DockerRootDir)), or
        C(/var/lib/containerd). The nearest existing parent is checked if it does not exist.
      - The check runs before anything is written or sent to the engine, and only when a load
        is needed. The uncompressed size of a compressed archive comes from the read of its
        manifest, which decompresses in memory only.
    type: path
  min_free_bytes:
    description:
      - Bytes that must remain free in O(staging_dir) on top of what the load needs.
    type: int
    default: 0
  force:
    description:
      - Load the archive even when every image ID is present.
    type: bool
    default: false
  containerd_namespace:
    description:
      - containerd namespace for O(engine=containerd).
    type: str
    default: k8s.io
  containerd_address:
    description:
      - containerd socket for O(engine=containerd) (C(ctr --address)); the ctr default when unset.
    type: path
  manifest_cache:
    description:
      - Remember what a read of the archive found (format, image IDs, tags, SHA-256) in
        O(cache_dir), keyed by the archive's real path, device, inode, size, mtime and ctime, so a
        re-run on an unchanged file reads none of it.
      - A changed file (any of those differ) is read again. The cache directory must belong to
        the user the module runs as and must not be writable by others, or it is ignored.
      - Never written in check mode.
    type: bool
    default: true
  cache_dir:
    description:
      - Directory of the manifest cache (created with mode C(0700)).
    type: path
    default: ~/.cache/gpulab/image_archive
extends_documentation_fragment:
  - gpulab.provision.attributes
attributes:
  check_mode:
    support: full
    description: Reports what would be loaded, retagged or skipped (C(would_load)); loads, tags and writes nothing.
  diff_mode:
    support: none
    description: No diff is produced.
  idempotent:
    support: full
    description:
      - Idempotent by image ID, unlike C(community.docker.docker_image_load), which always loads.
        A second run with the same archive reports C(changed=false).
notes:
  - An OCI-only archive (no C(manifest.json)) cannot be loaded by Docker's classic image store;
    the module says so before loading. Use O(engine=containerd) for those, or an archive written by
    C(docker save). Docker 25+ C(docker save) archives carry both formats and work with both
    engines.
  - With Docker's classic image store the image ID is the config digest. For OCI archives with
    several platforms the manifest for the host's architecture is used.
  - In an OCI archive a bare C(org.opencontainers.image.ref.name) such as C(1.0) names no
    repository and is ignored; name such images with O(retag) by image ID.
  - The free-space check runs on the managed host; it means nothing when C(DOCKER_HOST) points at a
    remote daemon.
  - O(checksum) guards a skip as well as a load. A run that finds every image present still fails
    on a mismatching archive (read once, or taken from the cache when the file is unchanged).
seealso:
  - module: community.docker.docker_image_load
    description: Loads archives with the Docker SDK, not idempotently.
requirements:
  - C(docker) CLI for O(engine=docker), C(ctr) for O(engine=containerd).
  - C(zstd) for C(.tar.zst) archives.
"""

EXAMPLES = r"""
- name: Preload the PyTorch image, verified, without network
  gpulab.provision.image_archive:
    path: /srv/images/pytorch-2.1-cuda12.1-ubuntu20.04.tar.zst
    checksum: "sha256:{{ pytorch_image_sha256 }}"

- name: Preload into containerd for Kubernetes and add a mirror name to every tag
  gpulab.provision.image_archive:
    path: /srv/images/cuda-12.1-runtime.tar.gz
    engine: containerd
    prefix: registry.lab.internal/mirror/

- name: Give a loaded image a lab name
  gpulab.provision.image_archive:
    path: /srv/images/pytorch.tar
    retag:
      pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime: lab/pytorch:2.1-cuda12.1

- name: Keep 20 GiB free after the load, checked on the disk Docker unpacks to
  gpulab.provision.image_archive:
    path: /srv/images/big.tar.zst
    min_free_bytes: "{{ 20 * 1024 ** 3 }}"
  register: __preload

- name: Show what was done
  ansible.builtin.debug:
    msg: "{{ __preload.images | map(attribute='action') | list }}"
"""

RETURN = r"""
images:
  description: One entry per image in the archive.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Image ID (config digest).
      type: str
      sample: sha256:1743d0fa85bd5859267bad07c8f79bc7e4b220ad28f6c64d2dae2332e1170f5d
    tags:
      description: The image's tags in the archive.
      type: list
      elements: str
      sample: [pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime]
    action:
      description: V(loaded), V(skipped) (already present by ID), or V(would_load) in check mode.
      type: str
      sample: loaded
    retagged:
      description: Names pointed at the image by this run (or that would be, in check mode),
        from O(retag)/O(prefix), or archive tags that pointed elsewhere.
      type: list
      elements: str
      sample: [registry.lab.internal/mirror/pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime]
loaded:
  description: Number of images loaded (in check mode, that would be loaded).
  returned: success
  type: int
  sample: 1
skipped_count:
  description:
    - Number of images already present by ID.
    - Not named C(skipped) on purpose, because Ansible reads a truthy C(skipped) in any task result
      as "this task was skipped". It then reports a task that retagged as skipped and drops its
      handler notifications.
  returned: success
  type: int
  sample: 0
bytes_read:
  description: Bytes of the archive file this run read (0 on a re-run answered by the manifest cache).
  returned: success
  type: int
  sample: 1000020992
archive:
  description: What the module knows about the archive.
  returned: success
  type: dict
  contains:
    path:
      description: Absolute path.
      type: str
    format:
      description: V(docker) (manifest.json), V(oci) (index.json) or V(docker+oci) (both, Docker 25+).
      type: str
    compression:
      description: V(none), V(gzip), V(zstd), V(xz) or V(bzip2).
      type: str
    size:
      description: File size in bytes.
      type: int
    uncompressed_size:
      description: Size of the tar stream in bytes.
      type: int
    sha256:
      description: C(sha256:<hex>) of the file, or null when this run had no reason to read it in full.
      type: str
    from_cache:
      description: Whether the manifest came from the manifest cache.
      type: bool
  sample:
    path: /srv/images/tiny.tar.zst
    format: docker
    compression: zstd
    size: 4242
    uncompressed_size: 18432
    sha256: sha256:9af972cf64289d388ca14aaf80553cef634e1ef16228433b698cd65df113548a
    from_cache: false
engine:
  description: The engine used.
  returned: success
  type: str
  sample: docker
load_mode:
  description:
    - How the archive went into the engine. V(stream) through this module (decompressed and
      verified on the way), V(direct) by path, null when nothing was loaded.
  returned: success
  type: str
  sample: stream
space:
  description: The free-space check (C(path), C(needed), C(available) in bytes), null when no load was needed.
  returned: success
  type: dict
  sample: {path: /var/lib/docker, needed: 36864, available: 84825493504}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive import preload
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_engines import ContainerdEngine, DockerEngine
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            checksum=dict(type="str"),
            engine=dict(type="str", default="docker", choices=["docker", "containerd"]),
            retag=dict(type="dict"),
            prefix=dict(type="str", aliases=["retag_prefix"]),
            allow_latest=dict(type="bool", default=False),
            staging_dir=dict(type="path"),
            min_free_bytes=dict(type="int", default=0),
            force=dict(type="bool", default=False),
            containerd_namespace=dict(type="str", default="k8s.io"),
            containerd_address=dict(type="path"),
            manifest_cache=dict(type="bool", default=True),
            cache_dir=dict(type="path", default="~/.cache/gpulab/image_archive"),
        ),
        mutually_exclusive=[("retag", "prefix")],
        supports_check_mode=True,
    )
    p = module.params

    def run(argv):
        return module.run_command(argv)

    if p["engine"] == "docker":
        engine = DockerEngine(run, docker=module.get_bin_path("docker", required=True))
    else:
        engine = ContainerdEngine(run, ctr=module.get_bin_path("ctr", required=True),
                                  namespace=p["containerd_namespace"], address=p["containerd_address"])
    if p["min_free_bytes"] < 0:
        module.fail_json(msg="min_free_bytes must be 0 or more")
    try:
        result = preload(
            p["path"], engine,
            checksum=p["checksum"],
            retag=p["retag"],
            prefix=p["prefix"],
            allow_latest=p["allow_latest"],
            staging_dir=p["staging_dir"],
            min_free_bytes=p["min_free_bytes"],
            force=p["force"],
            check_mode=module.check_mode,
            cache_dir=p["cache_dir"] if p["manifest_cache"] else None,
        )
    except ImageArchiveError as exc:
        module.fail_json(msg=exc.msg, error_kind=exc.kind, **exc.details)
    verb = "would load" if module.check_mode else "loaded"
    retagged = sum(len(i["retagged"]) for i in result["images"])
    result["msg"] = "%s %d image(s), skipped %d, %s %d tag(s)" % (
        verb, result["loaded"], result["skipped_count"], "would tag" if module.check_mode else "tagged", retagged)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
