# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for plugin unit tests: loopback-only network, fake mirrors, a test CA."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import sys

import pytest

UNIT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if UNIT_DIR not in sys.path:
    sys.path.insert(0, UNIT_DIR)

from mirror_servers import MirrorServer, RefusingPort, StallingListener  # noqa: E402

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def _is_loopback(host):
    if host in (None, "localhost", "localhost.localdomain", ""):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Tests talk to 127.0.0.0/8 only: no DNS lookups and no connections anywhere else.

    A name that is not loopback fails like an unknown host (socket.gaierror) without any query
    leaving the machine; proxies from the environment are ignored so loopback stays direct.
    """
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)

    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, "test network guard: %s is not loopback" % host)
        return real_getaddrinfo(host, *args, **kwargs)

    def _check(address):
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            raise ConnectionRefusedError("test network guard: %s is not loopback" % (address[0],))

    def connect(self, address):
        _check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def servers():
    """Factory for fake mirrors, all stopped at the end of the test.

    ``servers()`` an HTTP MirrorServer; ``servers(tls=ctx)`` HTTPS; ``servers(StallingListener)``;
    ``servers(RefusingPort)``.
    """
    started = []

    def make(cls=MirrorServer, **kwargs):
        server = cls(**kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def stalling(servers):
    return servers(StallingListener)


@pytest.fixture
def refusing(servers):
    return servers(RefusingPort)


@pytest.fixture(scope="session")
def test_ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_context(test_ca):
    """Server-side TLS context with a certificate for 127.0.0.1 signed by the test CA."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture
def ca_bundle(test_ca, tmp_path):
    path = tmp_path / "lab-ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return str(path)
