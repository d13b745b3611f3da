# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirrors and mirror_watch metrics: state across runs, staleness, removed mirrors, masking, promtool."""

from __future__ import annotations

import json
import os
import re

import promtool
import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import metrics, metrics_mirrors as mm

T0 = 1_700_000_000.0
CATALOG = {"pypi": ["a", "b"], "docker": ["da", "db"]}


def result(name, healthy=True, latency_ms=12, lag=None, age_h=None, url=None):
    return {"name": name, "url": url or "https://%s.example/simple" % name, "healthy": healthy,
            "latency_ms": latency_ms if healthy else None, "reason": None if healthy else "HTTP 503",
            "lag": lag, "age_h": age_h}


def chosen(name, status="ok", url=None):
    return {"name": name, "status": status, "url_masked": url or "https://%s.example/simple" % name}


def series(text):
    """``{(metric, frozenset(labels)): value}`` from a rendered file."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r'^([a-z_:]+)(?:\{(.*)\})? (\S+)$', line)
        assert match, line
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        out[(match.group(1), labels)] = float(match.group(3))
    return out


def value(text, metric, **labels):
    return series(text).get((metric, frozenset(labels.items())))


def names(text, metric):
    return sorted(dict(labels).get("mirror") or dict(labels).get("service") for (m, labels) in series(text) if m == metric)


def run(data, now, **kw):
    """One run through the pure functions: (new state, rendered text), the text checked by promtool."""
    kw.setdefault("catalog", CATALOG)
    new = mm.update_mirrors(data, now, **kw)
    text = metrics.render(mm.mirrors_families(new, now))
    promtool.check_metrics(text)
    return new, text


def test_first_run_exports_every_probe_outcome_and_the_active_mirror():
    data, text = run({}, T0, results={"pypi": [result("a", lag=3, age_h=1.5), result("b", healthy=False, lag=40)]},
                     selected={"pypi": chosen("a")})
    assert value(text, "gpulab_mirror_active_info", service="pypi", mirror="a", url="https://a.example/simple",
                 status="ok") == 1
    assert value(text, "gpulab_mirror_probe_success", service="pypi", mirror="a") == 1
    assert value(text, "gpulab_mirror_probe_success", service="pypi", mirror="b") == 0
    assert value(text, "gpulab_mirror_probe_duration_seconds", service="pypi", mirror="a") == 0.012
    # latency of an unhealthy probe is not a latency
    assert value(text, "gpulab_mirror_probe_duration_seconds", service="pypi", mirror="b") is None
    assert value(text, "gpulab_mirror_serial_lag", service="pypi", mirror="a") == 3
    assert value(text, "gpulab_mirror_serial_lag", service="pypi", mirror="b") == 40
    assert value(text, "gpulab_mirror_sync_age_seconds", service="pypi", mirror="a") == 5400
    assert value(text, "gpulab_mirror_sync_age_seconds", service="pypi", mirror="b") is None
    assert value(text, "gpulab_mirror_last_probe_timestamp_seconds", service="pypi", mirror="b") == T0
    assert value(text, "gpulab_mirror_last_success_timestamp_seconds", service="pypi", mirror="a") == T0
    assert value(text, "gpulab_mirror_last_success_timestamp_seconds", service="pypi", mirror="b") is None
    assert "gpulab_mirror_switches_total" not in text  # no switch yet
    assert "instance=" not in text and "host=" not in text
    assert json.loads(json.dumps(data)) == data  # the state is JSON


def test_a_failover_moves_the_active_series_and_counts_one_switch():
    data, _text = run({}, T0, results={"pypi": [result("a")]}, selected={"pypi": chosen("a")})
    data, text = run(data, T0 + 120, results={"pypi": [result("a", healthy=False), result("b", latency_ms=30)]},
                     selected={"pypi": chosen("b")},
                     switches=[{"service": "pypi", "from": "a", "to": "b", "reason": "failover"}])
    assert names(text, "gpulab_mirror_active_info") == ["b"]
    assert value(text, "gpulab_mirror_switches_total", service="pypi", to="b", reason="failover", **{"from": "a"}) == 1
    assert value(text, "gpulab_mirror_probe_success", service="pypi", mirror="a") == 0
    # a's last success is the first run's, kept across runs
    assert value(text, "gpulab_mirror_last_success_timestamp_seconds", service="pypi", mirror="a") == T0
    assert value(text, "gpulab_mirror_last_probe_timestamp_seconds", service="pypi", mirror="a") == T0 + 120


def test_a_switch_back_counts_under_its_own_reason_and_counters_add_up_across_runs():
    data = {}
    for step in range(3):  # a -> b -> a, three times
        now = T0 + step * 600
        data, _text = run(data, now, results={"pypi": [result("a", healthy=False), result("b")]}, selected={"pypi": chosen("b")},
                          switches=[{"service": "pypi", "from": "a", "to": "b", "reason": "failover"}])
        data, text = run(data, now + 300, results={"pypi": [result("a"), result("b")]}, selected={"pypi": chosen("a")},
                         switches=[{"service": "pypi", "from": "b", "to": "a", "reason": "switch_back"}])
    assert value(text, "gpulab_mirror_switches_total", service="pypi", to="b", reason="failover", **{"from": "a"}) == 3
    assert value(text, "gpulab_mirror_switches_total", service="pypi", to="a", reason="switch_back", **{"from": "b"}) == 3
    assert names(text, "gpulab_mirror_active_info") == ["a"]
    # a run without switches keeps the counts
    data, text = run(data, T0 + 4000, results={"pypi": [result("a")]}, selected={"pypi": chosen("a")})
    assert value(text, "gpulab_mirror_switches_total", service="pypi", to="a", reason="switch_back", **{"from": "b"}) == 3


def test_mirrors_not_probed_within_stale_s_have_no_outcome_series():
    data, _text = run({}, T0, results={"pypi": [result("a", lag=1, age_h=2), result("b")]}, selected={"pypi": chosen("a")})
    # later runs probe only the chosen mirror (the watcher's polite probe)
    data, text = run(data, T0 + 600, results={"pypi": [result("a", lag=2, age_h=2)]}, selected={"pypi": chosen("a")})
    assert value(text, "gpulab_mirror_probe_success", service="pypi", mirror="b") == 1  # 600 s old: still fresh
    data, text = run(data, T0 + 901, results={"pypi": [result("a", lag=2, age_h=2)]}, selected={"pypi": chosen("a")})
    for metric in ("gpulab_mirror_probe_success", "gpulab_mirror_probe_duration_seconds", "gpulab_mirror_serial_lag",
                   "gpulab_mirror_sync_age_seconds"):
        assert names(text, metric) == ["a"], metric
    # what is known for certain stays: when b was probed and when it last answered
    assert value(text, "gpulab_mirror_last_probe_timestamp_seconds", service="pypi", mirror="b") == T0
    assert value(text, "gpulab_mirror_last_success_timestamp_seconds", service="pypi", mirror="b") == T0
    # stale_s is the caller's
    assert "mirror=\"b\"" in metrics.render([f for f in mm.mirrors_families(data, T0 + 901, stale_s=3600)
                                             if f["name"] == "gpulab_mirror_probe_success"])


def test_a_mirror_removed_from_the_catalog_drops_out_but_its_switch_counts_stay():
    data, _text = run({}, T0, results={"pypi": [result("a", healthy=False), result("b")]}, selected={"pypi": chosen("b")},
                      switches=[{"service": "pypi", "from": "a", "to": "b", "reason": "failover"}])
    data, text = run(data, T0 + 60, results={"pypi": [result("b")]}, selected={"pypi": chosen("b")},
                     catalog={"pypi": ["b", "c"], "docker": ["da", "db"]})
    assert 'mirror="a"' not in text
    assert "a" not in data["probes"]["pypi"]
    assert value(text, "gpulab_mirror_switches_total", service="pypi", to="b", reason="failover", **{"from": "a"}) == 1


def test_an_active_mirror_removed_from_the_catalog_and_a_removed_service_drop_out():
    data, _text = run({}, T0, results={"pypi": [result("a")], "conda": [result("c1")]},
                      selected={"pypi": chosen("a"), "conda": chosen("c1")}, catalog={"pypi": ["a"], "conda": ["c1"]})
    # the watcher knows only its services: conda is left alone
    data, text = run(data, T0 + 1, catalog={"pypi": ["b"]})
    assert names(text, "gpulab_mirror_active_info") == ["c1"]
    assert names(text, "gpulab_mirror_probe_success") == ["c1"]
    # a complete catalog (mirror_probe_all's gpulab_mirrors) without conda drops it
    data, text = run(data, T0 + 2, catalog={"pypi": ["b"]}, complete=True)
    assert text == "" and data["probes"] == {} and data["active"] == {}


def test_no_chosen_mirror_means_no_active_series_and_kept_is_a_status():
    data, text = run({}, T0, results={"pypi": [result("a", healthy=False)]}, selected={"pypi": chosen("a", "kept")})
    assert value(text, "gpulab_mirror_active_info", service="pypi", mirror="a", url="https://a.example/simple",
                 status="kept") == 1
    none = {"name": None, "status": "none", "url_masked": None}
    data, text = run(data, T0 + 1, results={"pypi": [result("a", healthy=False)]}, selected={"pypi": none})
    assert "gpulab_mirror_active_info" not in text
    assert value(text, "gpulab_mirror_probe_success", service="pypi", mirror="a") == 0


def test_a_credential_in_a_url_is_never_a_label_value():
    url = "https://bob:s3cret@pypi.lab.example/simple"
    selected = {"pypi": dict(chosen("a"), url_masked=url, url=url)}
    data, text = run({}, T0, results={"pypi": [result("a", url=url)]}, selected=selected)
    assert "s3cret" not in text and "s3cret" not in json.dumps(data)
    [(labels, _one)] = [(dict(k[1]), v) for k, v in series(text).items() if k[0] == "gpulab_mirror_active_info"]
    assert labels["url"].startswith("https://") and "pypi.lab.example/simple" in labels["url"] and "bob:s3cret" not in labels["url"]


def test_odd_names_and_reasons_are_escaped_and_pass_promtool():
    data, text = run({}, T0, results={"pypi": [result('we"ird\\name\nx')]}, selected={"pypi": chosen('we"ird\\name\nx')},
                     catalog={})
    assert 'mirror="we\\"ird\\\\name\\nx"' in text


def test_the_watch_concern_counts_runs_per_status_and_says_each_decision():
    data = mm.update_watch({}, 0)
    data = mm.update_watch(data, 0)
    data = mm.update_watch(data, 8)
    text = metrics.render(mm.watch_families(data, T0, 1.25, 8, 120, {"pypi": "failover", "docker": "ok"}))
    promtool.check_metrics(text)
    assert value(text, "gpulab_mirror_watch_runs_total", status="0") == 2
    assert value(text, "gpulab_mirror_watch_runs_total", status="8") == 1
    assert value(text, "gpulab_mirror_watch_last_exit_status") == 8
    assert value(text, "gpulab_mirror_watch_last_run_duration_seconds") == 1.25
    assert value(text, "gpulab_mirror_watch_last_run_timestamp_seconds") == T0
    assert value(text, "gpulab_mirror_watch_interval_seconds") == 120
    assert value(text, "gpulab_mirror_watch_decision_info", service="pypi", action="failover") == 1
    assert value(text, "gpulab_mirror_watch_decision_info", service="docker", action="ok") == 1
    # no interval known: no series, rather than a made-up one
    assert "interval" not in metrics.render(mm.watch_families(data, T0, 1, 0, None, {}))


def test_record_writes_both_files_and_the_state_and_check_mode_writes_nothing(tmp_path):
    directory = str(tmp_path)
    assert mm.record_mirrors(directory, T0, {"pypi": [result("a")]}, {"pypi": chosen("a")}, catalog=CATALOG, check=True)
    assert [name for name in os.listdir(directory) if not name.endswith(".lock")] == []
    assert mm.record_mirrors(directory, T0, {"pypi": [result("a")]}, {"pypi": chosen("a")}, catalog=CATALOG)
    mm.record_watch_run(directory, T0, 0.5, 0, 120, {"pypi": "ok"})
    mm.record_watch_run(directory, T0 + 120, 0.5, 0, 120, {"pypi": "ok"})
    mirrors_text = (tmp_path / "gpulab_mirrors.prom").read_text()
    watch_text = (tmp_path / "gpulab_mirror_watch.prom").read_text()
    promtool.check_metrics(mirrors_text)
    promtool.check_metrics(watch_text)
    assert value(mirrors_text, "gpulab_mirror_active_info", service="pypi", mirror="a", url="https://a.example/simple",
                 status="ok") == 1
    assert value(watch_text, "gpulab_mirror_watch_runs_total", status="0") == 2
    # an unchanged state renders the same bytes: no write
    assert not mm.record_mirrors(directory, T0, None, {"pypi": chosen("a")}, catalog=CATALOG)


def test_a_missing_directory_is_one_line_naming_gpulab_metrics_dir(tmp_path):
    with pytest.raises(metrics.MetricsError) as caught:
        mm.record_mirrors(str(tmp_path / "nope"), T0, {"pypi": [result("a")]})
    assert str(caught.value).startswith("gpulab_metrics_dir: ") and "\n" not in str(caught.value)
