# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health probes for package mirrors, all at once, within one deadline. Entry point: :func:`run_probe`.

Health means the mirror answered its protocol correctly, in time (a captive portal's 200 is not
healthy); what each kind checks lives in its own file (probe_pypi, probe_conda, probe_docker,
probe_apt, probe_http). Here: the options, and the runner. All mirrors are probed at once, each in
a daemon thread, and :func:`run_probe` returns at one deadline whatever the mirrors do: a mirror
that has not finished by then is reported as timed out, and its sockets are shut down.

Standard library plus ``ansible.module_utils.urls``; importable and testable without Ansible running.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.gpulab.provision.plugins.module_utils import (
    probe_apt,
    probe_conda,
    probe_docker,
    probe_freshness,
    probe_http,
    probe_pypi,
)
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import SecretMasker
from ansible_collections.gpulab.provision.plugins.module_utils.printable import one_line
from ansible_collections.gpulab.provision.plugins.module_utils.probe_require import (
    MAX_ITEMS as MAX_REQUIRE_ITEMS,
    check_length,
)
from ansible_collections.gpulab.provision.plugins.module_utils.probe_session import Session
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import (
    ProbeSpecError,
    Unhealthy,
    Verdict,
    check_timeout,
    validate_mirrors,
)
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import (
    UrlOpener,
    describe_error,
    timeout_reason,
)

DEFAULT_TIMEOUT = 3.0
DEFAULT_OPTIONS = {
    "project": "pip",
    "channel": "pkgs/main",
    "subdir": "noarch",
    "suite": "bookworm",
    "path": "",
    "docker_image": None,
    "require": None,
    "max_serial_lag": None,
    "max_age_h": None,
}
CHECKS = {"pypi": probe_pypi, "conda": probe_conda, "docker": probe_docker, "apt": probe_apt, "http": probe_http}


def validate_options(kind, options=None):
    """Fill in defaults for the kind-specific options and check them."""
    merged = dict(DEFAULT_OPTIONS)
    for key, value in (options or {}).items():
        if key not in DEFAULT_OPTIONS:
            raise ProbeSpecError("unknown probe option %r" % key)
        if value is not None:
            merged[key] = value
    for key in ("project", "channel", "subdir", "suite"):
        if not isinstance(merged[key], str) or not merged[key].strip():
            raise ProbeSpecError("%s must be a non-empty string" % key)
    if not isinstance(merged["path"], str):
        raise ProbeSpecError("path must be a string")
    for key in ("channel", "subdir", "suite", "path"):
        if ".." in merged[key].split("/"):
            raise ProbeSpecError("%s must not contain '..'" % key)
    if kind == "docker":
        probe_docker.check_options(merged)
    require = merged["require"] or []
    if not isinstance(require, (list, tuple)) or not all(isinstance(item, str) for item in require):
        raise ProbeSpecError("require must be a list of strings such as torch==2.5.1")
    if require and not hasattr(CHECKS[kind], "check_require"):
        raise ProbeSpecError("require is not supported for kind %s (only pypi, conda and docker)" % kind)
    if len(require) > MAX_REQUIRE_ITEMS:
        raise ProbeSpecError("require: %d items; a probe takes at most %d" % (len(require), MAX_REQUIRE_ITEMS))
    for index, item in enumerate(require):
        try:
            check_length(item)
            CHECKS[kind].check_require([item])
        except ValueError as exc:  # RequirementError, or a parser's own error: named, never a traceback
            raise ProbeSpecError("require[%d]: %s" % (index, exc))
    merged["require"] = list(require)
    for key, example in (("max_serial_lag", 500), ("max_age_h", 24)):
        value = merged[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ProbeSpecError("%s must be a number >= 0 (e.g. %s) or null, not %r" % (key, example, value))
    return merged


def probe_url(kind, base_url, options):
    """The URL a probe GETs first, built from a mirror's base URL (credentials already split off)."""
    if kind not in CHECKS:
        raise ProbeSpecError("unknown kind %r" % kind)
    return CHECKS[kind].probe_url(base_url, options)


def _probe_one(kind, session, options, timeout):
    """Return ``(Verdict, latency_ms or None)`` for one mirror; never raises."""
    clock = session.clock
    started = clock()
    try:
        verdict = _checked(kind, session, options)
    except Unhealthy as exc:
        verdict = Verdict(False, exc.reason)
    except Exception as exc:  # every failure becomes a reason, never a crash of the module
        verdict = Verdict(False, describe_error(exc, timeout))
    if verdict.healthy and clock() > session.deadline_at:
        verdict = Verdict(False, timeout_reason(timeout))
    latency = int(round((clock() - started) * 1000)) if verdict.healthy else None
    return verdict, latency


def _checked(kind, session, options):
    """The kind's check and the mirror site's status feed, at once."""
    calls = [lambda: CHECKS[kind].check(session, options)]
    if session.mirror.status_url:
        calls.append(lambda: probe_freshness.read_status_feed(session))
    answers = session.parallel(calls)
    verdict = answers[0]
    feed = answers[1] if len(answers) > 1 else None
    if feed is not None:
        if feed["last_success"] is not None:
            verdict.updated = feed["last_success"]
        if verdict.healthy and feed["failed"]:
            return Verdict(False, "%s (last sync failed)" % feed["detail"], verdict.serial, verdict.updated,
                           verdict.digests)
    return verdict


class _Board:
    """Results posted by the probe threads; closed at the deadline so late posts are dropped."""

    def __init__(self, count):
        self.cond = threading.Condition()
        self.results = [None] * count
        self.pending = count
        self.closed = False

    def post(self, index, result):
        with self.cond:
            if self.closed or self.results[index] is not None:
                return
            self.results[index] = result
            self.pending -= 1
            self.cond.notify_all()

    def close_at(self, deadline_at, clock):
        with self.cond:
            while self.pending:
                left = deadline_at - clock()
                if left <= 0:
                    break
                self.cond.wait(left)
            self.closed = True
            return list(self.results)


def _result(mirror, verdict, latency_ms, status, masker):
    return {
        "name": mirror.name,
        "url": mirror.url_masked,
        "healthy": verdict.healthy,
        "latency_ms": latency_ms if verdict.healthy else None,
        "http_status": status,
        # a reason may quote what the mirror sent (an exception's text): one line, always
        "reason": one_line(masker(verdict.reason)) if verdict.reason else None,
        "serial": verdict.serial,
        "updated": verdict.updated,
        "digests": verdict.digests,
        "reference": mirror.reference,
    }


def run_probe(kind, mirrors, deadline=DEFAULT_TIMEOUT, opener=None, validate_certs=True, ca_path=None,
              clock=time.monotonic, **options):
    """Probe every mirror at once; return by ``deadline`` seconds (plus thread bookkeeping).

    :arg kind: pypi, conda, docker, apt or http.
    :arg mirrors: list of ``{name, url, insecure, reference, status_url}`` dicts.
    :arg deadline: seconds for the whole probe, all mirrors together.
    :arg opener: an object with ``open(method, url, headers, timeout, insecure, connections)``
        returning a :class:`probe_transport.Response` (default :class:`probe_transport.UrlOpener`);
        tests inject fakes.
    :kwarg options: project, channel, subdir, suite, path, docker_image, require (pinned items every
        mirror must serve), max_serial_lag and max_age_h (freshness policy; None = no limit).
    :returns: ``{"results": [...], "elapsed_ms": int, "timeout": float}``, results in input order.
    :raises ProbeSpecError: bad input; the message never shows credentials.
    """
    timeout = check_timeout(deadline)
    validated = validate_mirrors(kind, mirrors)
    options = validate_options(kind, options)
    masker = SecretMasker([m.url for m in validated] + [m.status_url for m in validated if m.status_url])
    if opener is None:
        opener = UrlOpener(validate_certs=validate_certs, ca_path=ca_path)
    if hasattr(opener, "prepare"):
        opener.prepare(validated)

    started = clock()
    deadline_at = started + timeout
    board = _Board(len(validated))
    sessions = [Session(m, opener, deadline_at, clock) for m in validated]

    def work(index, session):
        try:
            verdict, latency = _probe_one(kind, session, options, timeout)
        except BaseException as exc:  # pragma: no cover - _probe_one already turns errors into verdicts
            verdict, latency = Verdict(False, describe_error(exc, timeout)), None
        board.post(index, _result(session.mirror, verdict, latency, session.status, masker))

    # Daemon threads, not a ThreadPoolExecutor: its workers are joined at interpreter exit, so a
    # stalled mirror would hold the module's process open past the deadline.
    for index, session in enumerate(sessions):
        thread = threading.Thread(target=work, args=(index, session), name="probe-%d" % index)
        thread.daemon = True
        thread.start()

    results = board.close_at(deadline_at, clock)
    for index, session in enumerate(sessions):
        if results[index] is None:
            session.connections.abort()
            results[index] = _result(session.mirror, Verdict(False, timeout_reason(timeout)), None, session.status,
                                     masker)
    probe_freshness.judge(results, options["max_serial_lag"], options["max_age_h"])
    if kind == "docker":
        probe_docker.digest_consensus(results, {m.name for m in validated if m.reference})
    return {
        "results": results,
        "elapsed_ms": int(round((clock() - started) * 1000)),
        "timeout": timeout,
    }
