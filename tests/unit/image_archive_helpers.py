# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by the image_archive tests (module_utils and module): is a dockerd there, run a
command, build a deterministic tar in memory, hash bytes, compress a file, import, look up and
remove test images, build image archives in Python, save a real one from dockerd. Imported by name
(tests/unit is on sys.path).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile
import threading
import uuid

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_refs import normalize_ref


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


def build_archive(path, tags=("gpulab-test/synthetic:1.0",), layout="classic", payload=b"hello\n",
                  arch="amd64", index_names=None):
    """A docker save style archive made in Python; returns the image ID.

    layout: classic (docker <= 24), docker25 (OCI layout + manifest.json pointing at blobs) or oci
    (index.json only). index_names: annotations for index.json (default: the tags, fully qualified).
    """
    layer = tar_bytes({"hello.txt": payload})
    config = json.dumps({"architecture": arch, "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]}},
                        sort_keys=True).encode()
    image_id = "sha256:" + sha(config)
    members = {}
    if layout == "classic":
        layer_dir = sha(layer + b"dir")
        members[sha(config) + ".json"] = config
        members[layer_dir + "/VERSION"] = b"1.0"
        members[layer_dir + "/json"] = b'{"id":"%s"}' % layer_dir.encode()
        members[layer_dir + "/layer.tar"] = layer
        members["manifest.json"] = json.dumps([{"Config": sha(config) + ".json", "RepoTags": list(tags) or None,
                                                "Layers": [layer_dir + "/layer.tar"]}]).encode()
    else:
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha256:" + sha(layer), "size": len(layer)}]}).encode()
        members["blobs/sha256/" + sha(config)] = config
        members["blobs/sha256/" + sha(layer)] = layer
        members["blobs/sha256/" + sha(manifest)] = manifest
        names = index_names if index_names is not None else [normalize_ref(t) for t in tags]
        descs = []
        for name in names or [None]:
            desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + sha(manifest), "size": len(manifest),
                    "platform": {"architecture": arch, "os": "linux"}}
            if name:
                desc["annotations"] = {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}
            descs.append(desc)
        members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": descs}).encode()
        members["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
        if layout == "docker25":
            members["manifest.json"] = json.dumps([{"Config": "blobs/sha256/" + sha(config),
                                                    "RepoTags": list(tags) or None,
                                                    "Layers": ["blobs/sha256/" + sha(layer)]}]).encode()
    with open(path, "wb") as f:
        f.write(tar_bytes(members))
    return image_id


def truncate_copy(src, dst, keep):
    """Copy the first keep bytes of src (keep < 0: all but the last -keep) to dst."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[:keep if keep >= 0 else len(data) + keep])
    return dst


def run_cli(argv):
    """An engine ``run``: (rc, stdout, stderr) of argv."""
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


def real_archives(tmp_path_factory):
    """Generator for a session fixture: a tiny image made with docker import, saved with docker save,
    plus its variants (compressed, truncated); the image is removed at the end."""
    if not DOCKER_OK:
        pytest.skip("needs a working dockerd (%s)" % DOCKER_WHY)
    d = tmp_path_factory.mktemp("image-archive-real")
    repo = "gpulab-test/ia-tiny-%s" % uuid.uuid4().hex[:8]
    ref = repo + ":1.0"
    image_id = docker_import(ref, {"hello.txt": ("gpulab %s\n" % repo).encode()})
    try:
        out = {"id": image_id, "ref": ref, "repo": repo, "dir": str(d)}
        out["tar"] = str(d / "tiny.tar")
        sh("docker", "save", "-o", out["tar"], ref)
        out["inspect_tags"] = json.loads(sh("docker", "image", "inspect", "--format", "{{json .RepoTags}}",
                                            ref).stdout)
        out["tar.gz"] = compress(out["tar"], "gz")
        out["tar.xz"] = compress(out["tar"], "xz")
        if shutil.which("zstd"):
            out["tar.zst"] = compress(out["tar"], "zst")
        out["truncated"] = truncate_copy(out["tar"], str(d / "truncated.tar"), os.path.getsize(out["tar"]) // 2)
        out["truncated.gz"] = truncate_copy(out["tar.gz"], str(d / "truncated.tar.gz"), -20)
        if "tar.zst" in out:
            out["truncated.zst"] = truncate_copy(out["tar.zst"], str(d / "truncated.tar.zst"), -10)
        out["sha256"] = sha(open(out["tar"], "rb").read())
        yield out
    finally:
        rmi(image_id)


USER = "lab-user"
PASSWORD = "s3cr/t#pw"              # '/' and '#' must be percent-encoded in a URL
PASSWORD_IN_URL = "s3cr%2Ft%23pw"
TOKEN = "tok-3f9a8c7e1d"
SECRETS = (PASSWORD, PASSWORD_IN_URL, TOKEN, "s3cr", "t#pw")   # none may ever show in output


class FileServer(object):
    """A lab file server on 127.0.0.1 (port 0) for url downloads. Serves {path: bytes} with Basic auth and ?token=, honours Range; ``cut`` sends only that many
    bytes of the next answer and closes; ``ignore_range`` answers 200 to a Range request."""

    def __init__(self, files):
        self.files = files
        self.requests = []
        self.cut = None
        self.ignore_range = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - quiet test output
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                auth = self.headers.get("Authorization", "")
                outer.requests.append({"path": parts.path, "range": self.headers.get("Range"), "auth": bool(auth)})
                want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
                if auth != want:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="lab"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if parse_qs(parts.query).get("token") != [TOKEN] or parts.path not in outer.files:
                    self.send_response(404 if parse_qs(parts.query).get("token") == [TOKEN] else 403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = outer.files[parts.path]
                start = 0
                rng = self.headers.get("Range")
                if rng and not outer.ignore_range:
                    start = int(rng.split("=", 1)[1].rstrip("-"))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut is not None:
                    body, outer.cut = body[:outer.cut], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path, user=USER, password=PASSWORD_IN_URL, token=TOKEN):
        cred = ("%s:%s@" % (user, password)) if user else ""
        return "http://%s127.0.0.1:%d%s?token=%s" % (cred, self.port, path, token)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_main(module, args, capsys, check_mode=False):
    """A module's main() with these args: (everything it printed, the result dict, with 'failed' on failure)."""
    from ansible.module_utils.testing import patch_module_args
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    return out, json.loads(out.strip().splitlines()[-1])
