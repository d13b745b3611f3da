# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real conda (26.7.1, classic solver) and conda channels on loopback, one server per mirror.

The client is set up once per session by scripts/conda-client.sh (the shared recipe in
../shared/conda-client). When it cannot be set up the tests FAIL, they are never skipped: CI must
prove that conda reads what conda_mirror, failover's writer and the watcher write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading

from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
SETUP = os.path.join(ROOT, "scripts", "conda-client.sh")


@pytest.fixture(scope="session")
def conda_client():
    """The work directory of the real conda (``bin/conda``, ``srv/`` the recipe's channel)."""
    try:
        done = subprocess.run(["bash", SETUP], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=900, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("scripts/conda-client.sh ran past 900 s: the real conda could not be set up")
    if done.returncode != 0:
        pytest.fail("the real conda could not be set up (scripts/conda-client.sh exited %d); these tests must run, "
                    "not skip:\n%s" % (done.returncode, done.stderr[-3000:]))
    work = done.stdout.strip().splitlines()[-1]
    assert os.access(os.path.join(work, "bin", "conda"), os.X_OK), work
    return work


def _empty_repodata(subdir):
    return json.dumps({"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}, "removed": [],
                       "repodata_version": 1}) + "\n"


@pytest.fixture(scope="session")
def channel_tree(conda_client, tmp_path_factory):
    """A TUNA-shaped mirror tree: ``anaconda/pkgs/main`` (tinypkg, tinydep), ``anaconda/pkgs/r`` (empty),
    ``anaconda/cloud/conda-forge`` (the same two packages), as conda_mirror's default layout asks."""
    tree = tmp_path_factory.mktemp("conda-mirror")
    main = os.path.join(conda_client, "srv", "pkgs", "main")
    shutil.copytree(main, str(tree / "anaconda" / "pkgs" / "main"))
    shutil.copytree(main, str(tree / "anaconda" / "cloud" / "conda-forge"))
    for subdir in ("noarch", "linux-64"):
        (tree / "anaconda" / "pkgs" / "r" / subdir).mkdir(parents=True)
        (tree / "anaconda" / "pkgs" / "r" / subdir / "repodata.json").write_text(_empty_repodata(subdir))
    return tree


class ChannelServer:
    """The mirror tree over HTTP on a loopback address, each request logged as ``(method, path, status)``."""

    def __init__(self, tree, host, port=0):
        if not host.startswith("127."):
            raise ValueError("channel servers bind to loopback only, not %s" % host)
        self.tree, self.host, self.log = str(tree), host, []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, code="-", size="-"):
                server.log.append((self.command, self.path.split("?")[0], int(getattr(code, "value", code))))

            def log_message(self, format, *args):  # noqa: A002 - quiet
                pass

        self._handler = partial(Handler, directory=self.tree)
        self.port = port
        self.httpd = None
        self.start()

    @property
    def url(self):
        return "http://%s:%d/anaconda" % (self.host, self.port)

    def start(self):
        self.httpd = ThreadingHTTPServer((self.host, self.port), self._handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        """Connection refused from now on (the port is released; :meth:`start` serves it again)."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def gets(self, status=None):
        return [path for method, path, code in self.log if method == "GET" and (status is None or code == status)]


@pytest.fixture
def mirrors(channel_tree):
    """Two mirrors of the same channel: ``a`` on 127.0.0.2, ``b`` on 127.0.0.3."""
    servers = {"a": ChannelServer(channel_tree, "127.0.0.2"), "b": ChannelServer(channel_tree, "127.0.0.3")}
    yield servers
    for server in servers.values():
        server.stop()


# A repository manager's conda proxies (Nexus: <nexus>/repository/<repo>/..., Artifactory:
# <host>/artifactory/api/conda/<repo>/...) named pkgs and cloud: the mirror tree under each prefix.
MANAGER_PREFIXES = {"nexus": "/repository", "artifactory": "/artifactory/api/conda"}


@pytest.fixture(scope="module")
def managers(channel_tree, tmp_path_factory):
    """One server on 127.0.0.4, the channel tree under each product's prefix; ``(server, {product: base URL})``."""
    tree = tmp_path_factory.mktemp("managers")
    for prefix in MANAGER_PREFIXES.values():
        shutil.copytree(str(channel_tree / "anaconda"), str(tree / prefix.strip("/")))
    server = ChannelServer(tree, "127.0.0.4")
    yield server, {product: "http://127.0.0.4:%d%s" % (server.port, prefix)
                   for product, prefix in MANAGER_PREFIXES.items()}
    server.stop()
