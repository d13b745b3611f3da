# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One mirror's HTTP conversation under the probe's deadline.

A :class:`Session` follows redirects itself (counted, loops spotted, https->http refused unless
the mirror is insecure), sends the mirror's credentials and any private header (a registry token)
only to the host the request started on, and reads bodies within the deadline and a size cap.
Standard library only; runs on the managed host.
"""

from __future__ import annotations

import contextlib
import threading
import zlib

from urllib.parse import urljoin, urlsplit

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import (
    basic_auth_value,
    same_host,
    split_credentials,
)
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import Unhealthy
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import (
    Connections,
    DeadlineExceeded,
    header,
)

MAX_REDIRECTS = 5
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_SMALL_BODY_BYTES = 1024 * 1024  # token responses, status feeds
READ_CHUNK = 64 * 1024
USER_AGENT = "gpulab.provision-mirror_probe/1"
REDIRECT_CODES = (301, 302, 303, 307, 308)
# Requests one mirror gets at once: its pinned items, images and side checks run on this many threads
# at most (one per item made 40 pins 40 connections, per mirror, at the same moment).
MAX_PARALLEL = 8


def size_text(nbytes):
    if nbytes % (1024 * 1024) == 0:
        return "%d MiB" % (nbytes // (1024 * 1024))
    return "%d bytes" % nbytes


def text_of(body):
    return body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body or "")


class Session:
    """HTTP for one mirror until ``deadline_at`` (a ``clock()`` value).

    ``status`` is the last HTTP status seen; the runner reads it at the deadline from another
    thread, and ``connections`` lets it shut the sockets down.
    """

    def __init__(self, mirror, opener, deadline_at, clock):
        self.mirror = mirror
        self.opener = opener
        self.deadline_at = deadline_at
        self.clock = clock
        self.connections = Connections()
        self.status = None
        self._local = threading.local()  # .secondary: a side request of parallel(), not the mirror's status
        # parallel()'s helper threads for this mirror: with the thread that probes it, MAX_PARALLEL at most
        self._helpers_lock = threading.Lock()
        self._helpers_left = MAX_PARALLEL - 1

    @contextlib.contextmanager
    def aside(self):
        """Requests in this block do not set ``status`` (a side check, such as one blob byte)."""
        before = getattr(self._local, "secondary", False)
        self._local.secondary = True
        try:
            yield
        finally:
            self._local.secondary = before

    def remaining(self):
        left = self.deadline_at - self.clock()
        if left <= 0:
            raise DeadlineExceeded()
        return left

    def open(self, method, url, headers=None, private_headers=None):
        """Send a request, following up to MAX_REDIRECTS redirects. Return the final Response.

        ``private_headers`` (and the mirror's own Basic credentials) go only to the host the
        chain started on, never to a host a redirect points at.
        """
        start_url = url
        current = url
        seen = {url}
        for _hop in range(MAX_REDIRECTS + 1):
            send = {"User-Agent": USER_AGENT}
            send.update(headers or {})
            if same_host(current, start_url):
                if self.mirror.username is not None and same_host(current, self.mirror.base_url):
                    send["Authorization"] = basic_auth_value(self.mirror.username, self.mirror.password)
                send.update(private_headers or {})
            resp = self.opener.open(method, current, send, self.remaining(), self.mirror.insecure, self.connections)
            if not getattr(self._local, "secondary", False):
                self.status = resp.status
            if resp.status not in REDIRECT_CODES:
                return resp
            location = header(resp.headers, "Location")
            resp.close()
            if not location:
                raise Unhealthy("HTTP %d redirect without a Location" % resp.status)
            target, _user, _password = split_credentials(urljoin(current, location.strip()))
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                raise Unhealthy("redirect to an unsupported scheme")
            if scheme == "http" and urlsplit(current).scheme.lower() == "https" and not self.mirror.insecure:
                raise Unhealthy("redirect from https to plain http (set insecure: true to allow)")
            if target in seen:
                raise Unhealthy("redirect loop")
            seen.add(target)
            current = target
            if resp.status == 303 and method != "HEAD":
                method = "GET"
        raise Unhealthy("redirect loop (more than %d redirects)" % MAX_REDIRECTS)

    def read(self, resp, cap=None, what="response", truncate=False):
        """Read the whole body within the deadline and ``cap`` bytes (after gzip decoding).

        Over the cap the mirror is unhealthy, unless ``truncate``: then reading just stops there.
        """
        if cap is None:
            cap = MAX_BODY_BYTES
        encoding = (header(resp.headers, "Content-Encoding") or "").strip().lower()
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip") else None
        body = bytearray()
        too_large = Unhealthy("%s larger than %s" % (what, size_text(cap)))
        try:
            while True:
                self.connections.set_timeout(self.remaining())
                chunk = resp.read1(READ_CHUNK)
                if not chunk:
                    break
                if decoder is not None:
                    chunk = decoder.decompress(chunk, cap + 1 - len(body))
                body += chunk
                if len(body) > cap:
                    if truncate:
                        return bytes(body[:cap])
                    raise too_large
            if decoder is not None:
                body += decoder.flush()
                if len(body) > cap:
                    raise too_large
        finally:
            resp.close()
        return bytes(body)

    def get(self, url, headers=None, cap=None, what="response", truncate=False, private_headers=None):
        """GET and read a 2xx body; any other status comes back with an empty body."""
        resp = self.open("GET", url, headers, private_headers)
        if not 200 <= resp.status < 300:
            resp.close()
            return resp, b""
        return resp, self.read(resp, cap, what, truncate)

    def parallel(self, calls):
        """Run ``calls`` (functions of no argument) at once, by the deadline, on at most MAX_PARALLEL threads.

        The first call is the main one: its requests set ``status``; the others' do not.
        Returns their results in order; the first exception any of them raised is raised here
        (after all have finished), and :class:`DeadlineExceeded` when one is still running (or not
        started) at the deadline: a long list costs one deadline, not one per item.

        The calling thread runs calls too, and helpers come from the session's budget
        (MAX_PARALLEL - 1 threads for the whole session, nested calls included): one mirror never
        sees more than MAX_PARALLEL requests at once, however many items the lab pins.
        """
        if len(calls) == 1:
            return [calls[0]()]
        outcomes = [None] * len(calls)
        done = threading.Semaphore(0)
        lock = threading.Lock()
        queue = list(range(len(calls) - 1, 0, -1))  # popped from the end: 1, 2, ...; the caller runs 0
        secondary = getattr(self._local, "secondary", False)

        def run(index):
            before = getattr(self._local, "secondary", False)
            self._local.secondary = secondary or index > 0
            try:
                outcomes[index] = (True, calls[index]())
            except BaseException as exc:  # handed to the caller below
                outcomes[index] = (False, exc)
            finally:
                self._local.secondary = before
            done.release()

        def drain():
            while True:
                with lock:
                    if not queue or self.clock() >= self.deadline_at:
                        return
                    index = queue.pop()
                run(index)

        def helper():
            try:
                drain()
            finally:
                self._return_helper()

        for _helper in range(self._take_helpers(len(calls) - 1)):
            thread = threading.Thread(target=helper, name="probe-part")
            thread.daemon = True
            thread.start()
        run(0)
        drain()
        for _call in calls:
            if not done.acquire(timeout=max(self.deadline_at - self.clock(), 0.001)):
                raise DeadlineExceeded()
        for succeeded, value in outcomes:
            if not succeeded:
                raise value
        return [value for _succeeded, value in outcomes]

    def _take_helpers(self, wanted):
        """Up to ``wanted`` helper threads from the session's budget (0 when it is spent)."""
        with self._helpers_lock:
            granted = min(wanted, self._helpers_left)
            self._helpers_left -= granted
            return granted

    def _return_helper(self):
        with self._helpers_lock:
            self._helpers_left += 1
