# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Freshness signals and the policy that judges them (plugins/module_utils/probe_freshness.py).

Feed samples: tests/fixtures/mirror-feeds (README.md there says where each came from).
"""
from __future__ import annotations

import calendar

import pytest

from mirror_feeds import feed_text as feed

from ansible_collections.gpulab.provision.plugins.module_utils.probe_freshness import (
    FeedError,
    bandersnatch_time,
    http_date,
    inrelease_times,
    iso_time,
    judge,
    status_feed,
)


def utc(*fields):
    return float(calendar.timegm(fields + (0,) * (6 - len(fields))))


def result(name, serial=None, updated=None, healthy=True):
    return {"name": name, "healthy": healthy, "latency_ms": 5 if healthy else None,
            "reason": None if healthy else "connection refused", "serial": serial, "updated": updated}


# ------------------------------------------------------------------------------ parsing


def test_inrelease_date_and_valid_until_from_the_real_debian_security_file():
    date, valid_until = inrelease_times(feed("debian-security-bookworm.InRelease"))
    assert date == utc(2026, 11, 25, 22, 33, 12)
    assert valid_until == utc(2026, 12, 2, 22, 33, 12)


def test_inrelease_without_valid_until():
    assert inrelease_times("Suite: stable\nDate: Sat, 09 Nov 2024 10:00:00 UTC\n") == (utc(2024, 11, 9, 10), None)


def test_bandersnatch_stamp_is_utc():
    assert bandersnatch_time(feed("bandersnatch-last-modified")) == utc(2024, 11, 9, 2, 2, 31)
    assert bandersnatch_time("<html>login</html>") is None


def test_http_date():
    assert http_date("Sat, 09 Nov 2024 10:00:00 GMT") == utc(2024, 11, 9, 10)
    assert http_date("yesterday") is None and http_date(None) is None


@pytest.mark.parametrize("value, expected", [
    (1731116467, 1731116467.0), ("1731116467", 1731116467.0),
    ("2024-11-09T10:00:00Z", utc(2024, 11, 9, 10)), ("2024-11-09 18:00:00+08:00", utc(2024, 11, 9, 10)),
    ("2024-11-09T10:00:00.123-01:30", utc(2024, 11, 9, 11, 30)), (0, None), (True, None), ("soon", None),
])
def test_iso_time(value, expected):
    assert iso_time(value) == expected


def test_tunasync_success_failed_and_syncing_entries():
    text = feed("tunasync.json")
    assert status_feed(text, "anaconda") == {"last_success": 1731116467.0, "failed": False,
                                             "detail": "status feed: anaconda success"}
    failed = status_feed(text, "docker-ce")
    assert failed["failed"] is True and failed["last_success"] == 1730488244.0
    syncing = status_feed(text, "pypi")
    assert syncing["failed"] is False and syncing["last_success"] == 1731117751.0


def test_ustc_metas_entries():
    text = feed("ustc-metas.json")
    assert status_feed(text, "anaconda") == {"last_success": 1731115262.0, "failed": False,
                                             "detail": "status feed: anaconda idle"}
    assert status_feed(text, "pypi")["detail"] == "status feed: pypi syncing"


def test_feed_without_the_entry_or_not_json_is_an_error():
    with pytest.raises(FeedError, match="no entry named 'npm'"):
        status_feed(feed("tunasync.json"), "npm")
    with pytest.raises(FeedError, match="not JSON"):
        status_feed("<html>", "pypi")


# ------------------------------------------------------------------------------ policy


def test_lag_counts_against_the_highest_serial_and_the_policy_rejects_with_evidence():
    results = [result("a", 51990), result("b", 51234), result("c", 51900), result("d")]
    judge(results, max_serial_lag=500, now=0)
    assert [r["lag"] for r in results] == [0, 756, 90, None]
    assert [r["healthy"] for r in results] == [True, False, True, True]
    assert results[1]["reason"] == "serial 51234 behind 51990 (lag 756 > 500)"
    assert results[1]["latency_ms"] is None
    assert results[3]["freshness"] == "freshness unknown"
    assert results[1]["freshness"] == "serial 51234, lag 756"


def test_an_unhealthy_reference_still_sets_the_top_serial():
    results = [result("mirror", 100), result("reference", 900, healthy=False)]
    judge(results, max_serial_lag=500, now=0)
    assert results[0]["healthy"] is False and results[0]["lag"] == 800
    assert results[1]["reason"] == "connection refused"  # an unhealthy mirror keeps its own reason


def test_without_a_policy_lag_is_shown_but_nothing_is_rejected():
    results = [result("a", 10), result("b", 1000)]
    judge(results, now=0)
    assert [r["healthy"] for r in results] == [True, True] and results[0]["lag"] == 990


def test_age_policy():
    now = utc(2024, 11, 9, 12)
    results = [result("fresh", updated=now - 3600), result("stale", updated=now - 72 * 3600), result("unknown")]
    judge(results, max_age_h=24, now=now)
    assert [r["age_h"] for r in results] == [1.0, 72.0, None]
    assert [r["healthy"] for r in results] == [True, False, True]
    assert results[1]["reason"] == "last sync 2024-11-06T12:00Z, 72.0 h ago (> 24 h)"
    assert results[0]["freshness"] == "synced 2024-11-09T11:00Z (1.0 h ago)"
    assert "updated" not in results[0]


def test_a_zero_lag_limit_wants_the_newest_serial():
    results = [result("a", 5), result("b", 6)]
    judge(results, max_serial_lag=0, now=0)
    assert [r["healthy"] for r in results] == [False, True]
