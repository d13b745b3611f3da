# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Freshness of a mirror: how far behind its upstream it is, from what it publishes.

Standard library only (runs on the managed host inside mirror_probe). Everything but
:func:`read_status_feed` (which asks the mirror's session for the feed) is a pure function.

Signals, each read where the mirror publishes it:

- PyPI serial (``X-PyPI-Last-Serial``, PEP 691 ``meta._last-serial``, ``<!--SERIAL n-->``):
  lag = highest serial seen in this probe (reference entries included) minus the mirror's;
- a time of the last successful sync: conda ``repodata.json`` ``Last-Modified``, apt
  ``InRelease`` ``Date`` (and ``Valid-Until``: expired is unhealthy whatever the policy),
  bandersnatch's ``<web>/last-modified`` (``%Y%m%dT%H:%M:%S``, UTC), or the mirror site's status
  feed (tunasync ``tunasync.json``: ``name, status, last_update_ts``; USTC ``api/v1/metas``:
  ``name, syncing, lastSuccess``).

:func:`judge` applies the policy (``max_serial_lag``, ``max_age_h``) to the probe's results once
every mirror has answered. A mirror without any signal is judged as before; its ``freshness``
says ``unknown``.
"""

from __future__ import annotations

import calendar
import email.utils
import json
import math
import re
import time

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import basic_auth_value, split_credentials
from ansible_collections.gpulab.provision.plugins.module_utils.probe_session import MAX_SMALL_BODY_BYTES, text_of

_INRELEASE_FIELD = re.compile(r"^(Date|Valid-Until):[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_BANDERSNATCH_STAMP = re.compile(r"^\s*(\d{8}T\d{2}:\d{2}:\d{2})\s*$")
_ISO_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
# tunasync job states that mean the last run did not succeed (a mirror still "syncing" or
# "pre-syncing" is judged by the time of its last success).
TUNASYNC_FAILED = ("failed",)
# A sync time is an epoch between 1970 and the year 9999: what a mirror sends past that (1e400, a
# 5000-digit stamp, the year 99999) is no signal. time.gmtime() raised OverflowError on it in judge(),
# which failed the whole probe, every mirror of the service with it.
MAX_EPOCH = 253402300799.0


def _epoch(value):
    """``value`` (seconds) as a float when it is a plausible sync time, else None."""
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) and 0 < value <= MAX_EPOCH else None


class FeedError(ValueError):
    """A status feed that cannot be read; the message is the reason shown for the mirror."""


def http_date(value):
    """An RFC 7231 date (``Last-Modified``, ``Date``; also the form in apt's InRelease) -> epoch seconds."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(str(value).strip())
        return _epoch(email.utils.mktime_tz(parsed)) if parsed is not None else None
    except (TypeError, ValueError, OverflowError):  # a year 99999 is out of calendar's range
        return None


def iso_time(value):
    """``2024-11-09T10:00:00+08:00`` / ``...Z`` / epoch seconds (int, float, digits) -> epoch seconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return _epoch(value)
    text = str(value).strip()
    if re.match(r"^\d+(\.\d+)?$", text):
        return _epoch(text)
    match = _ISO_STAMP.match(text)
    if not match:
        return None
    try:
        stamp = calendar.timegm(time.strptime("%s %s" % (match.group(1), match.group(2)), "%Y-%m-%d %H:%M:%S"))
    except ValueError:  # month 99: the feed's, no signal (it made the mirror unhealthy with a ValueError)
        return None
    zone = match.group(3)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        stamp -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return _epoch(stamp)


def bandersnatch_time(text):
    """The body of bandersnatch's ``last-modified`` file (``20241109T10:00:00``, UTC) -> epoch seconds."""
    match = _BANDERSNATCH_STAMP.match(text or "")
    if not match:
        return None
    try:
        return _epoch(calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H:%M:%S")))
    except ValueError:
        return None


def inrelease_times(text):
    """``(Date, Valid-Until)`` of an InRelease file as epoch seconds (None where absent)."""
    found = {}
    for match in _INRELEASE_FIELD.finditer(text or ""):
        found.setdefault(match.group(1), http_date(match.group(2)))
    return found.get("Date"), found.get("Valid-Until")


def _feed_entries(data):
    if isinstance(data, dict):
        for key in ("metas", "mirrors", "data", "jobs"):
            if isinstance(data.get(key), list):
                return data[key]
        return [dict(value, name=value.get("name", key)) for key, value in data.items() if isinstance(value, dict)]
    if isinstance(data, list):
        return data
    raise FeedError("status feed is not a list of mirrors")


def status_feed(text, name):
    """Read one entry of a mirror site's status feed.

    :arg text: the feed (tunasync's ``tunasync.json`` / ``/jobs``, or USTC's ``api/v1/metas``).
    :arg name: the entry's ``name`` (the repository on that site, e.g. ``pypi``).
    :returns: ``{"last_success": epoch or None, "failed": bool, "detail": str}``.
    :raises FeedError: not a feed, or no entry called ``name``.
    """
    try:
        data = json.loads(text)
    except ValueError:
        raise FeedError("status feed is not JSON")
    entries = [entry for entry in _feed_entries(data) if isinstance(entry, dict)]
    for entry in entries:
        if entry.get("name") != name:
            continue
        if "last_update_ts" in entry or "status" in entry:  # tunasync
            status = str(entry.get("status", "")).lower()
            return {"last_success": iso_time(entry.get("last_update_ts")) or iso_time(entry.get("last_update")),
                    "failed": status in TUNASYNC_FAILED,
                    "detail": "status feed: %s %s" % (name, status or "no status")}
        if "lastSuccess" in entry or "syncing" in entry:  # USTC (yuki)
            syncing = entry.get("syncing") is True
            return {"last_success": iso_time(entry.get("lastSuccess")), "failed": False,
                    "detail": "status feed: %s %s" % (name, "syncing" if syncing else "idle")}
        raise FeedError("status feed entry %r has neither last_update_ts nor lastSuccess" % name)
    raise FeedError("status feed has no entry named %r" % name)


# --------------------------------------------------------------------------------------------
# Policy


def _hours(seconds):
    return round(seconds / 3600.0, 1)


def _stamp(epoch):
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(epoch))


def _fail(result, reason):
    result["healthy"] = False
    result["latency_ms"] = None
    result["reason"] = reason


def judge(results, max_serial_lag=None, max_age_h=None, now=None):
    """Add ``lag``, ``age_h`` and ``freshness`` to each result; make stale mirrors unhealthy.

    ``results`` are mirror_probe results carrying the raw signals ``serial`` and ``updated``
    (epoch seconds of the last sync, popped here). Lag counts against the highest serial any
    mirror of this probe answered with, reference entries included, whatever their health.
    """
    now = time.time() if now is None else now
    serials = [r["serial"] for r in results if isinstance(r.get("serial"), int)]
    top = max(serials) if serials else None
    for result in results:
        updated = result.pop("updated", None)
        serial = result.get("serial")
        result["lag"] = top - serial if isinstance(serial, int) and top is not None else None
        result["age_h"] = _hours(max(now - updated, 0)) if updated is not None else None
        words = []
        if result["lag"] is not None:
            words.append("serial %d, lag %d" % (serial, result["lag"]))
        if updated is not None:
            words.append("synced %s (%s h ago)" % (_stamp(updated), result["age_h"]))
        result["freshness"] = "; ".join(words) if words else "freshness unknown"
        if not result.get("healthy"):
            continue
        if max_serial_lag is not None and result["lag"] is not None and result["lag"] > max_serial_lag:
            _fail(result, "serial %d behind %d (lag %d > %d)" % (serial, top, result["lag"], max_serial_lag))
        elif max_age_h is not None and result["age_h"] is not None and now - updated > max_age_h * 3600:
            _fail(result, "last sync %s, %s h ago (> %s h)" % (_stamp(updated), result["age_h"], max_age_h))
    return results


def read_status_feed(session):
    """The mirror's entry in its site's status feed (``status_url``), or None when there is none.

    A feed that cannot be read or lacks the entry is no signal (``freshness unknown``), not a
    reason to drop the mirror; only what the feed says (failed, old) counts against it.
    """
    mirror = session.mirror
    if not mirror.status_url:
        return None
    url, username, password = split_credentials(mirror.status_url)
    private = {"Authorization": basic_auth_value(username, password)} if username is not None else None
    resp, body = session.get(url, {"Accept": "application/json"}, cap=MAX_SMALL_BODY_BYTES * 4, what="status feed",
                             private_headers=private)
    if not 200 <= resp.status < 300:
        return None
    try:
        return status_feed(text_of(body), mirror.status_name)
    except FeedError:
        return None
