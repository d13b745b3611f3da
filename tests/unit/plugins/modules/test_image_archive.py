# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab.provision.image_archive main(), end to end against the local dockerd (and its containerd).

The image is made here (``docker import`` of a one-file tar), saved with ``docker save`` and
removed, so every load is a real one. Tests that need dockerd are skipped when ``docker info``
fails; every image and tag made here is removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import uuid

import pytest

from image_archive_helpers import (  # shared with the other image_archive tests
    DOCKER_OK, DOCKER_WHY, compress, docker_import, image_id_of, needs_docker, needs_docker_cli, needs_zstd, rmi,
    run_main, sh, tar_bytes, sha,
)

from ansible_collections.gpulab.provision.plugins.modules import image_archive as module


# dockerd's own containerd (docker.io on Debian); a stand-alone one would be /run/containerd
CONTAINERD_SOCKETS = ["/run/containerd/containerd.sock", "/var/run/docker/containerd/containerd.sock"]


def run_module(args, capsys, check_mode=False):
    """main() with these args; returns the result dict (with 'failed' on failure)."""
    return run_main(module, args, capsys, check_mode=check_mode)[1]


def to_layout(src, dst, layout):
    """Rewrite a classic docker save archive as Docker 25+ (OCI + manifest.json) or OCI only."""
    with tarfile.open(src) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))[0]
        config = tf.extractfile(manifest["Config"]).read()
        layers = [tf.extractfile(name).read() for name in manifest["Layers"]]
    blobs = {sha(config): config}
    for layer in layers:
        blobs[sha(layer)] = layer
    man = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + sha(lay),
                    "size": len(lay)} for lay in layers]}).encode()
    blobs[sha(man)] = man
    tag = manifest["RepoTags"][0]
    name = tag if "/" in tag.split(":")[0] and "." in tag.split("/")[0] else "docker.io/" + tag
    members = dict(("blobs/sha256/" + k, v) for k, v in sorted(blobs.items()))
    members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sha(man),
        "size": len(man), "annotations": {"io.containerd.image.name": name,
                                          "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[1]}}]}).encode()
    members["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
    if layout == "docker25":
        members["manifest.json"] = json.dumps([{"Config": "blobs/sha256/" + sha(config), "RepoTags": [tag],
                                                "Layers": ["blobs/sha256/" + sha(lay) for lay in layers]}]).encode()
    with open(dst, "wb") as f:
        f.write(tar_bytes(members))
    return dst


@pytest.fixture(scope="session")
def img(tmp_path_factory):
    """A one-file image, saved (plain, gzip, zstd, Docker 25+ and OCI layouts) and removed."""
    if not DOCKER_OK:
        pytest.skip("needs a working dockerd (%s)" % DOCKER_WHY)
    d = tmp_path_factory.mktemp("image-archive-module")
    repo = "gpulab-test/ia-mod-%s" % uuid.uuid4().hex[:8]
    ref = repo + ":1.0"
    image_id = docker_import(ref, {"hello.txt": repo.encode()})
    latest_ref = repo + "-latest:latest"
    extra = [latest_ref]
    try:
        tar = str(d / "tiny.tar")
        sh("docker", "save", "-o", tar, ref)
        out = {"id": image_id, "ref": ref, "repo": repo, "tar": tar, "dir": d,
               "sha256": sha(open(tar, "rb").read())}
        out["tar.gz"] = compress(tar, "gz")
        if shutil.which("zstd"):
            out["tar.zst"] = compress(tar, "zst")
        out["docker25"] = to_layout(tar, str(d / "docker25.tar"), "docker25")
        out["oci"] = to_layout(tar, str(d / "oci.tar"), "oci")
        # an archive tagged :latest
        sh("docker", "tag", ref, latest_ref)
        out["latest"] = str(d / "latest.tar")
        sh("docker", "save", "-o", out["latest"], latest_ref)
        out["latest_ref"] = latest_ref
        out["extra_refs"] = extra
        rmi(image_id)
        assert image_id_of(image_id) is None
        yield out
    finally:
        rmi(*([image_id] + extra))


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


@pytest.fixture
def clean(img):
    """The image is absent before and after the test (with any name the test adds)."""
    rmi(img["id"])
    yield img
    rmi(img["id"])


# ---------------------------------------------------------------------------------------------
# docker
# ---------------------------------------------------------------------------------------------

@needs_docker
def test_load_then_idempotent_rerun(clean, capsys, cache_dir):
    img = clean
    args = {"path": img["tar"], "checksum": "sha256:" + img["sha256"], "cache_dir": cache_dir}
    r = run_module(args, capsys)
    assert r["changed"] is True, r
    assert r["images"] == [{"id": img["id"], "tags": [img["ref"]], "action": "loaded", "retagged": []}]
    assert r["loaded"] == 1 and r["skipped_count"] == 0
    assert r["bytes_read"] >= os.path.getsize(img["tar"])
    assert r["archive"]["sha256"] == "sha256:" + img["sha256"]
    assert r["load_mode"] == "stream"          # verified on the way in
    assert image_id_of(img["ref"]) == img["id"]

    r = run_module(args, capsys)
    assert r["changed"] is False, r
    assert r["images"][0]["action"] == "skipped" and r["skipped_count"] == 1 and r["loaded"] == 0
    assert r["bytes_read"] == 0 and r["archive"]["from_cache"] is True

    # without the cache the rerun still skips (the checksum is verified by reading the file)
    r = run_module(dict(args, manifest_cache=False), capsys)
    assert r["changed"] is False and r["archive"]["from_cache"] is False
    assert r["bytes_read"] >= os.path.getsize(img["tar"])

    # removed behind our back: loaded again, by path (the cache vouches for the checksum)
    rmi(img["id"])
    r = run_module(args, capsys)
    assert r["changed"] is True and r["load_mode"] == "direct" and image_id_of(img["ref"]) == img["id"]


@needs_docker
def test_load_without_checksum_goes_by_path(clean, capsys, cache_dir):
    r = run_module({"path": clean["tar"], "cache_dir": cache_dir}, capsys)
    assert r["changed"] is True and r["load_mode"] == "direct"
    assert r["bytes_read"] < os.path.getsize(clean["tar"])     # headers only
    assert image_id_of(clean["ref"]) == clean["id"]


@needs_docker
def test_checksum_mismatch_on_a_bigger_archive_stops_docker_load(tmp_path, capsys):
    """3 MiB: most of the tar is already in docker load when the mismatch shows; still nothing loaded."""
    ref = "gpulab-test/ia-mid-%s:1.0" % uuid.uuid4().hex[:8]
    image_id = docker_import(ref, {"blob": os.urandom(3 << 20)})
    try:
        tar = str(tmp_path / "mid.tar")
        sh("docker", "save", "-o", tar, ref)
        rmi(image_id)
        args = {"path": tar, "manifest_cache": False}
        r = run_module(dict(args, checksum="1" * 64), capsys)
        assert r["failed"] and r["error_kind"] == "checksum"
        assert image_id_of(image_id) is None
        r = run_module(dict(args, checksum=sha(open(tar, "rb").read())), capsys)
        assert r["changed"] and r["load_mode"] == "stream" and image_id_of(ref) == image_id
    finally:
        rmi(image_id)


@needs_docker
def test_check_mode_loads_nothing(clean, capsys, cache_dir):
    img = clean
    r = run_module({"path": img["tar"], "cache_dir": cache_dir, "prefix": "registry.lab.internal/mirror/"},
                   capsys, check_mode=True)
    assert r["changed"] is True
    assert r["images"][0]["action"] == "would_load"
    assert r["images"][0]["retagged"] == ["registry.lab.internal/mirror/" + img["ref"]]
    assert image_id_of(img["id"]) is None
    assert image_id_of("registry.lab.internal/mirror/" + img["ref"]) is None
    assert not os.path.exists(cache_dir)


@needs_docker
@pytest.mark.parametrize("variant", ["tar.gz", pytest.param("tar.zst", marks=needs_zstd), "docker25"])
def test_load_variants(clean, capsys, cache_dir, variant):
    img = clean
    digest = sha(open(img[variant], "rb").read())
    r = run_module({"path": img[variant], "checksum": digest, "cache_dir": cache_dir}, capsys)
    assert r["changed"] is True and r["images"][0]["id"] == img["id"], r
    assert image_id_of(img["ref"]) == img["id"]
    r = run_module({"path": img[variant], "checksum": digest, "cache_dir": cache_dir}, capsys)
    assert r["changed"] is False and r["images"][0]["action"] == "skipped"


@needs_docker
def test_in_a_playbook_a_retag_is_changed_not_skipped(clean, tmp_path):
    """Through ansible-playbook: an image that was present and only got a new name is 'changed'
    (the module must not return a truthy top-level 'skipped', which Ansible reads as a skipped task
    and then drops the handler notification)."""
    img = clean
    new = "lab/ia-play-%s:1.0" % uuid.uuid4().hex[:6]
    img["extra_refs"].append(new)
    sh("docker", "load", "-i", img["tar"])
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"name": "preload", "gpulab.provision.image_archive": {
                "path": img["tar"], "cache_dir": str(tmp_path / "cache"), "retag": {img["ref"]: new}},
             "notify": "retagged"},
            {"name": "preload again", "gpulab.provision.image_archive": {
                "path": img["tar"], "cache_dir": str(tmp_path / "cache"), "retag": {img["ref"]: new}}},
        ],
        "handlers": [{"name": "retagged", "ansible.builtin.debug": {"msg": "HANDLER-RAN"}}],
    }]))
    root = os.path.abspath(os.path.join(os.path.dirname(module.__file__), "..", ".."))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(root, "collections"))
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(playbook):
        pytest.skip("no ansible-playbook next to %s" % sys.executable)
    p = subprocess.run([playbook, "-i", "localhost,", "-c", "local", "-e",
                        "ansible_python_interpreter=" + sys.executable, str(play)],
                       capture_output=True, text=True, env=env, cwd=root, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "changed: [localhost]" in p.stdout and "HANDLER-RAN" in p.stdout, p.stdout
    recap = p.stdout.split("PLAY RECAP", 1)[1]
    assert "changed=1 " in recap and "skipped=0 " in recap, recap
    assert image_id_of(new) == img["id"]


@needs_docker
def test_checksum_mismatch_loads_nothing(clean, capsys, cache_dir):
    img = clean
    for variant in ("tar", "tar.gz"):
        r = run_module({"path": img[variant], "checksum": "sha256:" + "0" * 64, "cache_dir": cache_dir}, capsys)
        assert r["failed"] is True and r["error_kind"] == "checksum"
        assert "expected sha256:%s, got sha256:" % ("0" * 64) in r["msg"]
        assert image_id_of(img["id"]) is None


@needs_docker
def test_retag_and_prefix(clean, capsys, cache_dir):
    img = clean
    new = "lab/ia-%s:2.1-cuda12.1" % uuid.uuid4().hex[:6]
    img["extra_refs"].append(new)
    args = {"path": img["tar"], "cache_dir": cache_dir, "retag": {img["ref"]: new}}
    r = run_module(args, capsys)
    assert r["changed"] and r["images"][0]["retagged"] == [new]
    assert image_id_of(new) == img["id"]
    r = run_module(args, capsys)
    assert r["changed"] is False and r["images"][0]["retagged"] == []
    # the name removed behind our back: retagged, not reloaded
    sh("docker", "rmi", new)
    r = run_module(args, capsys)
    assert r["changed"] is True and r["images"][0]["action"] == "skipped"
    assert r["images"][0]["retagged"] == [new] and image_id_of(new) == img["id"]
    # the archive's own tag removed (image kept by the other name): retagged, not reloaded
    sh("docker", "rmi", img["ref"])
    r = run_module(args, capsys)
    assert r["changed"] is True and r["images"][0]["action"] == "skipped"
    assert r["images"][0]["retagged"] == [img["ref"]] and image_id_of(img["ref"]) == img["id"]

    prefixed = "registry.lab.internal/mirror/" + img["ref"]
    img["extra_refs"].append(prefixed)
    r = run_module({"path": img["tar"], "cache_dir": cache_dir, "prefix": "registry.lab.internal/mirror/"}, capsys)
    assert r["changed"] and r["images"][0]["retagged"] == [prefixed]
    assert image_id_of(prefixed) == img["id"]

    r = run_module({"path": img["tar"], "cache_dir": cache_dir, "retag": {"x/y:1": "lab/z:1"}}, capsys)
    assert r["failed"] and "is neither a tag nor an image ID in the archive" in r["msg"]


@needs_docker
def test_latest_refused_then_allowed(img, capsys, cache_dir):
    rmi(img["latest_ref"])
    r = run_module({"path": img["latest"], "cache_dir": cache_dir}, capsys)
    assert r["failed"] and r["error_kind"] == "latest"
    assert "pytorch-2.1-cuda12.1-ubuntu20.04" in r["msg"] and "allow_latest" in r["msg"]
    assert image_id_of(img["latest_ref"]) is None
    # a retag target without a tag means latest too
    r = run_module({"path": img["tar"], "cache_dir": cache_dir, "retag": {img["ref"]: "lab/untagged"}}, capsys)
    assert r["failed"] and r["error_kind"] == "latest"
    r = run_module({"path": img["latest"], "cache_dir": cache_dir, "allow_latest": True}, capsys)
    assert r["changed"] and r["images"][0]["action"] == "loaded"
    assert image_id_of(img["latest_ref"]) == img["id"]
    rmi(img["latest_ref"])


@needs_docker
def test_oci_only_archive_is_refused_by_classic_docker(clean, capsys, cache_dir):
    info = sh("docker", "info", "--format", "{{json .DriverStatus}}").stdout
    if "io.containerd.snapshotter" in info:
        pytest.skip("dockerd uses the containerd image store, which loads OCI archives")
    r = run_module({"path": clean["oci"], "cache_dir": cache_dir}, capsys)
    assert r["failed"] and "OCI-only archive" in r["msg"] and "engine: containerd" in r["msg"]
    assert image_id_of(clean["id"]) is None
    # check mode predicts the same failure
    r = run_module({"path": clean["oci"], "cache_dir": cache_dir}, capsys, check_mode=True)
    assert r["failed"] and "OCI-only archive" in r["msg"]


@needs_docker
def test_not_enough_space(clean, capsys, cache_dir):
    r = run_module({"path": clean["tar.gz"], "cache_dir": cache_dir, "min_free_bytes": 1 << 62}, capsys)
    assert r["failed"] and r["error_kind"] == "space"
    assert r["msg"].startswith("not enough free space in ")
    assert "need %d bytes" % r["needed"] in r["msg"] and "available %d" % r["available"] in r["msg"]
    assert image_id_of(clean["id"]) is None


@needs_docker_cli
def test_errors_before_any_engine_call(tmp_path, capsys):
    missing = str(tmp_path / "nope.tar")
    r = run_module({"path": missing, "manifest_cache": False}, capsys)
    assert r["failed"] and r["msg"] == "archive not found: %s" % missing and r["error_kind"] == "missing"

    junk = tmp_path / "random.tar"
    junk.write_bytes(tar_bytes({"data.bin": os.urandom(4096)}))
    r = run_module({"path": str(junk), "manifest_cache": False}, capsys)
    assert r["failed"] and r["msg"] == "no manifest.json or index.json: not a docker save / OCI archive"

    noise = tmp_path / "noise.tar.gz"
    noise.write_bytes(os.urandom(3000))
    r = run_module({"path": str(noise), "manifest_cache": False}, capsys)
    assert r["failed"] and "archive is truncated or not a tar" in r["msg"]

    r = run_module({"path": str(junk), "checksum": "md5:abc", "manifest_cache": False}, capsys)
    assert r["failed"] and "only sha256" in r["msg"]


@needs_docker
def test_truncated_archive(img, tmp_path, capsys):
    data = open(img["tar"], "rb").read()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:len(data) // 2])
    r = run_module({"path": str(cut), "manifest_cache": False}, capsys)
    assert r["failed"] and r["error_kind"] == "truncated"
    assert "archive is truncated or not a tar" in r["msg"]


# ---------------------------------------------------------------------------------------------
# containerd (dockerd's own containerd, in a namespace of our own)
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def containerd(img):
    ctr = shutil.which("ctr")
    if not ctr:
        pytest.skip("needs the ctr command")
    for sock in CONTAINERD_SOCKETS:
        if os.path.exists(sock) and subprocess.run([ctr, "--address", sock, "version"], capture_output=True,
                                                   timeout=20, check=False).returncode == 0:
            break
    else:
        pytest.skip("no reachable containerd socket (%s)" % ", ".join(CONTAINERD_SOCKETS))
    ns = "gpulab-test-%s" % uuid.uuid4().hex[:8]
    base = [ctr, "--address", sock, "--namespace", ns]
    yield {"address": sock, "namespace": ns, "base": base}
    names = subprocess.run(base + ["images", "ls", "-q"], capture_output=True, text=True, check=False).stdout.split()
    if names:
        subprocess.run(base + ["images", "rm", "--sync"] + names, capture_output=True, check=False)
    for _attempt in range(20):   # content and snapshots go with the garbage collector
        if subprocess.run([ctr, "--address", sock, "namespaces", "rm", ns], capture_output=True, check=False).returncode == 0:
            break
        time.sleep(0.5)


def ctr_images(c):
    out = subprocess.run(c["base"] + ["images", "ls"], capture_output=True, text=True, check=True).stdout
    return dict((line.split()[0], line.split()[2]) for line in out.splitlines()[1:] if line.strip())


@needs_docker
@pytest.mark.parametrize("variant", ["tar", "oci"])
def test_containerd_import_idempotent_and_retag(img, containerd, capsys, cache_dir, variant):
    args = {"path": img[variant], "engine": "containerd", "containerd_namespace": containerd["namespace"],
            "containerd_address": containerd["address"], "cache_dir": cache_dir,
            "prefix": "registry.lab.internal/mirror"}
    r = run_module(args, capsys, check_mode=True)
    assert r["changed"] and r["images"][0]["action"] == "would_load" and ctr_images(containerd) == {}

    r = run_module(args, capsys)
    assert r["changed"] and r["images"][0]["action"] == "loaded", r
    full = "docker.io/" + img["ref"]
    mirrored = "registry.lab.internal/mirror/" + img["ref"]
    refs = ctr_images(containerd)
    assert full in refs and mirrored in refs and refs[full] == refs[mirrored]
    assert r["images"][0]["retagged"] == [mirrored]

    r = run_module(args, capsys)
    assert r["changed"] is False and r["images"][0]["action"] == "skipped", r
