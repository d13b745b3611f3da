# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by the image_archive tests (module_utils and module): is a dockerd there, run a
command, build a deterministic tar in memory, hash bytes, compress a file, import, look up and
remove test images. Imported by name (tests/unit is on sys.path).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import shutil
import subprocess
import tarfile

import pytest


def docker_ok():
    """(True, '') when the docker CLI talks to a running dockerd, else (False, why)."""
    if not shutil.which("docker"):
        return False, "no docker CLI"
    try:
        p = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                           text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, "docker info: %s" % exc
    if p.returncode != 0:
        return False, "docker info failed: %s" % (p.stderr.strip().splitlines() or [""])[-1]
    return True, ""


DOCKER_OK, DOCKER_WHY = docker_ok()
needs_docker = pytest.mark.skipif(not DOCKER_OK, reason="needs a working dockerd (%s)" % DOCKER_WHY)
needs_docker_cli = pytest.mark.skipif(not shutil.which("docker"), reason="needs the docker CLI")
needs_zstd = pytest.mark.skipif(not shutil.which("zstd"), reason="needs the zstd command")


def sh(*argv, **kw):
    """Run argv, capture text output; raises on a non-zero exit unless check=False."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=kw.pop("check", True), **kw)


def tar_bytes(files):
    """A deterministic tar (PAX, fixed mtime) of {name: bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data):
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def compress(src, kind):
    """src -> src.gz / .zst / .xz (streaming)."""
    if kind == "gz":
        dst = src + ".gz"
        with open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    elif kind == "xz":
        dst = src + ".xz"
        with open(src, "rb") as fin, lzma.open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    elif kind == "zst":
        dst = src + ".zst"
        sh("zstd", "-q", "-f", "-o", dst, src)
    else:
        raise ValueError(kind)
    return dst


def image_id_of(ref):
    """The image ID dockerd has for ref (a name or an ID), or None."""
    p = sh("docker", "image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def rmi(*refs):
    """docker rmi -f, ignoring images that are not there."""
    subprocess.run(["docker", "rmi", "-f"] + list(refs), capture_output=True, check=False)


def docker_import(ref, files):
    """docker import a root filesystem of {name: bytes} as ref; returns the new image's ID."""
    p = subprocess.run(["docker", "import", "-", ref], input=tar_bytes(files), capture_output=True, check=False)
    assert p.returncode == 0, p.stderr
    return image_id_of(ref)
