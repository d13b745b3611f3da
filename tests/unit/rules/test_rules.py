"""The shipped alert rules (roles/metrics/files/gpulab.rules.yml): promtool checks them and runs their unit
tests (gpulab_rules_test.yml); every alert is tested firing and not firing, labelled and annotated, and
reads only metrics that exist."""
import os
import re
import subprocess

import pytest
import yaml

import promtool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
RULES = os.path.join(ROOT, "roles", "metrics", "files", "gpulab.rules.yml")
TESTS = os.path.join(HERE, "gpulab_rules_test.yml")

ALERTS = {
    "GpulabMirrorDown", "GpulabMirrorServiceAllDown", "GpulabMirrorActiveDead", "GpulabMirrorSiteSplit",
    "GpulabMirrorWatchSilent", "GpulabCacheUpstreamDown", "GpulabCacheServiceDown", "GpulabGpuNodeDegraded",
    "GpulabGpuXidBurst", "GpulabMetricsTextfileError",
}
# The metric schema the writers follow (docs/metrics.md), and node_exporter's own textfile metric.
METRICS = {
    "gpulab_mirror_active_info", "gpulab_mirror_probe_success", "gpulab_mirror_probe_duration_seconds",
    "gpulab_mirror_serial_lag", "gpulab_mirror_sync_age_seconds", "gpulab_mirror_last_probe_timestamp_seconds",
    "gpulab_mirror_last_success_timestamp_seconds", "gpulab_mirror_switches_total",
    "gpulab_mirror_watch_last_run_timestamp_seconds", "gpulab_mirror_watch_last_run_duration_seconds",
    "gpulab_mirror_watch_last_exit_status", "gpulab_mirror_watch_interval_seconds", "gpulab_mirror_watch_runs_total",
    "gpulab_mirror_watch_decision_info",
    "gpulab_gpu_health_verdict", "gpulab_gpu_health_last_run_timestamp_seconds", "gpulab_gpu_check_status",
    "gpulab_gpu_xid_events_total",
    "gpulab_cache_service_up", "gpulab_cache_upstream_up", "gpulab_cache_upstream_probe_duration_seconds",
    "gpulab_cache_disk_used_bytes", "gpulab_cache_filesystem_avail_bytes", "gpulab_cache_requests_total",
    "gpulab_cache_last_run_timestamp_seconds",
    "node_textfile_scrape_error",
}
PROMQL_WORDS = {"by", "on", "and", "or", "unless", "max", "min", "sum", "count", "time", "increase", "without",
                "group_left", "group_right", "ignoring", "rate", "bool", "avg"}


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _alerts():
    groups = _load(RULES)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _run(*args):
    done = subprocess.run([promtool.promtool()] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120, check=False)
    return done.returncode, done.stdout.decode("utf-8", "replace")


def test_promtool_checks_the_rules_file():
    rc, out = _run("check", "rules", RULES)
    assert rc == 0, out
    assert "SUCCESS: %d rules found" % len(ALERTS) in out, out


def test_promtool_unit_tests_pass():
    rc, out = promtool.test_rules(TESTS)
    assert rc == 0, out
    assert "SUCCESS" in out, out


def test_the_unit_tests_read_the_shipped_file():
    files = _load(TESTS)["rule_files"]
    assert [os.path.normpath(os.path.join(HERE, f)) for f in files] == [RULES]


def test_the_shipped_alerts_are_the_documented_ones():
    names = [rule["alert"] for rule in _alerts()]
    assert sorted(names) == sorted(ALERTS)
    assert len(_load(RULES)["groups"]) == 1


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_every_alert_is_tested_firing_and_not_firing(alert):
    cases = [case for test in _load(TESTS)["tests"] for case in test.get("alert_rule_test", [])
             if case["alertname"] == alert]
    firing = [case for case in cases if case.get("exp_alerts")]
    quiet = [case for case in cases if not case.get("exp_alerts")]
    assert firing, "%s: no test case where it fires" % alert
    assert quiet, "%s: no test case where it must not fire" % alert
    # Firing expectations name the annotations too: promtool compares them whole, so the templates are tested.
    for case in firing:
        for exp in case["exp_alerts"]:
            assert set(exp.get("exp_annotations", {})) == {"summary", "description", "hint"}, case


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_severity_and_annotations_with_labels(rule):
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert set(rule["annotations"]) == {"summary", "description", "hint"}
    assert "$labels." in rule["annotations"]["summary"]
    assert "$labels." in rule["annotations"]["description"]


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_reads_metrics_of_the_schema(rule):
    # A misspelt metric name never fires, and unit tests written with the same spelling would not see it.
    expr = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", " ", rule["expr"])
    expr = re.sub(r"\[[^\]]*\]|\{[^}]*\}", " ", expr)
    metrics = {name for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if name not in PROMQL_WORDS}
    assert metrics, rule["expr"]
    assert metrics <= METRICS, sorted(metrics - METRICS)


def test_a_broken_rule_fails_the_unit_tests(tmp_path):
    """The unit tests assert something: the same tests on a rules file whose GpulabMirrorDown never fires fail."""
    with open(RULES, encoding="utf-8") as handle:
        text = handle.read()
    broken = text.replace("expr: gpulab_mirror_probe_success == 0\n", "expr: gpulab_mirror_probe_success == 2\n")
    assert broken != text
    (tmp_path / "rules.yml").write_text(broken, encoding="utf-8")
    tests = _load(TESTS)
    tests["rule_files"] = ["rules.yml"]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    rc, out = promtool.test_rules(str(tmp_path / "tests.yml"))
    assert rc != 0, out
    assert "alertname: GpulabMirrorDown, time: 2m" in out, out
