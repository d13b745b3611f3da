# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nexus and Artifactory PyPI proxies are ordinary catalog entries: the URL shapes the README gives.

A stand-in server on loopback answers under each product's path layout (a Nexus ``pypi (proxy)``
repository: ``/repository/<repo>/simple/<project>/`` linking ``../../packages/...``; an Artifactory
PyPI remote: ``/artifactory/api/pypi/<repo>/simple/<project>/`` linking ``../../packages/packages/...``).
The collection's probe finds the pinned version there, pip_mirror's renderer writes pip.conf, and a
real pip installs a real wheel through it. The layouts are the products' documented URL forms; no
Nexus or Artifactory ran here.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import zipfile

import pytest

from mirror_servers import MirrorServer, Route

from ansible_collections.gpulab.provision.plugins.module_utils.probe import run_probe
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import render_client_config

WHEEL = "gpulabshape-1.0-py3-none-any.whl"

# (product, index path under the server, the file's link on the project page, relative to the page)
SHAPES = [
    ("nexus", "/repository/pypi-proxy/simple", "../../packages/gpulabshape/1.0/" + WHEEL),
    ("artifactory", "/artifactory/api/pypi/pypi-remote/simple", "../../packages/packages/3f/a1/" + WHEEL),
]


def _wheel():
    """A minimal, valid pure-Python wheel: one module and its dist-info (RECORD with hashes)."""
    files = {
        "gpulabshape.py": b"SHAPE = 'ok'\n",
        "gpulabshape-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: gpulabshape\nVersion: 1.0\n",
        "gpulabshape-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: gpulab-test\nRoot-Is-Purelib: true\n"
                                           b"Tag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
    record.append("gpulabshape-1.0.dist-info/RECORD,,")
    files["gpulabshape-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.fixture(scope="module")
def managers():
    """One server, both layouts; returns ``(server, {product: index URL})``."""
    wheel = _wheel()
    sha = hashlib.sha256(wheel).hexdigest()
    server = MirrorServer("127.0.0.1")
    urls = {}
    for product, index, link in SHAPES:
        page = "%s/gpulabshape/" % index
        body = ('<!DOCTYPE html><html><body><a href="%s#sha256=%s">%s</a></body></html>' % (link, sha, WHEEL))
        server.routes[page] = Route(headers={"Content-Type": "text/html"}, body=body)
        server.routes[os.path.normpath(page + link)] = Route(
            headers={"Content-Type": "application/octet-stream"}, body=wheel)
    server.start()
    for product, index, _link in SHAPES:
        urls[product] = "http://127.0.0.1:%d%s" % (server.port, index)
    yield server, urls
    server.stop()


def _pip_install(tmp_path, conf_text):
    conf = tmp_path / "pip.conf"
    conf.write_text(conf_text)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=str(conf), PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--target", str(target),
                           "gpulabshape==1.0"], env=env, capture_output=True, text=True, timeout=120, check=False)
    return done, target


@pytest.mark.parametrize("product", [shape[0] for shape in SHAPES])
def test_probe_render_and_real_pip_through_the_managers_layout(managers, product, tmp_path):
    server, urls = managers
    url = urls[product]
    entry = {"name": product, "url": url, "insecure": True}
    out = run_probe("pypi", [entry], 5, project="gpulabshape", require=["gpulabshape==1.0"])
    result = out["results"][0]
    assert result["healthy"], result

    selection = dict(entry, url_masked=url, status="ok", ranked=[dict(entry, url_masked=url)], rejected=[])
    rendered = render_client_config("", "pip_conf", selection, {})
    assert "index-url = %s" % url in rendered["content"]

    before = len(server.requests)
    done, target = _pip_install(tmp_path, rendered["content"])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (target / "gpulabshape.py").read_text() == "SHAPE = 'ok'\n"
    paths = [request["path"] for request in server.requests[before:]]
    prefix = url[len("http://127.0.0.1:%d" % server.port):].rsplit("/simple", 1)[0]
    # pip read the page and the file under this product's prefix, nothing else
    assert prefix + "/simple/gpulabshape/" in paths, paths
    assert any(path.endswith("/" + WHEEL) and path.startswith(prefix + "/packages/") for path in paths), paths
    assert all(path.startswith(prefix + "/") for path in paths), paths


def test_probe_names_the_missing_pin_under_a_managers_layout(managers):
    _server, urls = managers
    entry = {"name": "nexus", "url": urls["nexus"], "insecure": True}
    result = run_probe("pypi", [entry], 5, project="gpulabshape", require=["gpulabshape==2.0"])["results"][0]
    assert not result["healthy"]
    assert "gpulabshape==2.0" in result["reason"], result
