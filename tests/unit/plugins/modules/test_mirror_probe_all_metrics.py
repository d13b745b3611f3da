# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mirror_probe_all's metrics_dir: gpulab_mirrors.prom from the call's own probe and choice."""
from __future__ import annotations

import json
import os

import promtool
import pytest

from mirror_servers import pypi_mirror

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpulab.provision.plugins.module_utils import metrics_mirrors
from ansible_collections.gpulab.provision.plugins.modules import mirror_probe_all

SECRET = "hunter22-s3cr3t"


def run_module(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            mirror_probe_all.main()
    out = capsys.readouterr().out
    return exit_info.value.code != 0, json.loads(out.strip().splitlines()[-1]), out


@pytest.fixture
def lab(servers, refusing, tmp_path):
    good = pypi_mirror(servers())
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir()
    mirrors = {"pypi": [{"name": "down", "url": refusing.url + "/simple", "insecure": True},
                        {"name": "good", "url": "http://u:%s@127.0.0.1:%d/simple" % (SECRET, good.port), "insecure": True}]}
    args = {"mirrors": mirrors, "services": {"pypi": {"kind": "pypi", "project": "pip"}}, "policy": {"timeout_s": 2},
            "clients": {"pip": {"conf_path": str(tmp_path / "pip.conf"), "manage_uv": False}},
            "fact_path": str(tmp_path / "gpulab_mirrors.fact"), "lock_path": str(tmp_path / "lock"),
            "metrics_dir": str(metrics_dir)}
    return {"args": args, "path": tmp_path, "metrics": metrics_dir, "good": good}


def warning_texts(result):
    """The module's warnings as text (ansible-core 2.19 returns each as a structured event; a process keeps
    the warnings of earlier module runs, so callers pick theirs by content)."""
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings") or []]


def prom(lab):
    text = (lab["metrics"] / "gpulab_mirrors.prom").read_text()
    promtool.check_metrics(text)
    return text


def fact_on(lab, name):
    url = [m["url"] for m in lab["args"]["mirrors"]["pypi"] if m["name"] == name][0]
    (lab["path"] / "gpulab_mirrors.fact").write_text(json.dumps({"pypi": {"name": name, "status": "ok", "url_masked": url}}))


def test_record_writes_the_probe_and_the_choice_without_a_switch_on_the_first_record(lab, capsys):
    failed, result, out = run_module(capsys, dict(lab["args"], record=True))
    assert not failed, result
    text = prom(lab)
    assert 'gpulab_mirror_active_info{mirror="good",service="pypi",status="ok",url="http://***@127.0.0.1:%d/simple"} 1' \
        % lab["good"].port in text
    assert 'gpulab_mirror_probe_success{mirror="down",service="pypi"} 0' in text
    assert 'gpulab_mirror_probe_success{mirror="good",service="pypi"} 1' in text
    assert 'gpulab_mirror_probe_duration_seconds{mirror="good",service="pypi"} ' in text
    assert "gpulab_mirror_switches_total" not in text  # no choice before: nothing switched
    # the report and the metrics come from the same probe
    assert [r["name"] for r in result["probes"]["pypi"] if r["healthy"]] == ["good"]
    for name in os.listdir(str(lab["metrics"])):
        assert SECRET not in (lab["metrics"] / name).read_text(), name
    assert SECRET not in out and not [text for text in warning_texts(result) if "gpulab_metrics_dir" in text]


def test_a_recorded_change_of_choice_counts_one_ansible_switch_once(lab, capsys):
    fact_on(lab, "down")
    failed, result, _out = run_module(capsys, dict(lab["args"], record=True))
    assert not failed and result["fact_changed"] is True
    line = 'gpulab_mirror_switches_total{from="down",reason="ansible",service="pypi",to="good"} 1'
    assert line in prom(lab)
    failed, again, _out = run_module(capsys, dict(lab["args"], record=True))
    assert not failed and again["fact_changed"] is False
    assert line in prom(lab)  # the same choice again: no second switch


def test_write_counts_the_switch_and_moves_the_active_mirror(lab, capsys):
    fact_on(lab, "down")
    failed, result, _out = run_module(capsys, dict(lab["args"], write=True))
    assert not failed and str(lab["path"] / "pip.conf") in result["written"]
    text = prom(lab)
    assert 'gpulab_mirror_switches_total{from="down",reason="ansible",service="pypi",to="good"} 1' in text
    assert 'mirror="good",service="pypi",status="ok"' in text


def test_the_watchers_counts_and_the_modules_add_up(lab, capsys):
    # the watcher failed over good -> down earlier (same state file, under its lock)
    metrics_mirrors.record_mirrors(str(lab["metrics"]), 1_700_000_000, switches=[
        {"service": "pypi", "from": "good", "to": "down", "reason": "failover"}])
    fact_on(lab, "down")
    failed, _result, _out = run_module(capsys, dict(lab["args"], record=True))
    assert not failed
    text = prom(lab)
    assert 'gpulab_mirror_switches_total{from="good",reason="failover",service="pypi",to="down"} 1' in text
    assert 'gpulab_mirror_switches_total{from="down",reason="ansible",service="pypi",to="good"} 1' in text


def test_a_read_only_call_adds_its_observations_but_no_choice(lab, capsys):
    failed, result, _out = run_module(capsys, lab["args"])
    assert not failed and result["pending"]
    text = prom(lab)
    assert 'gpulab_mirror_probe_success{mirror="good",service="pypi"} 1' in text
    assert "gpulab_mirror_active_info" not in text and "switches_total" not in text


@pytest.mark.parametrize("mode", [{"record": True}, {"write": True}, {}])
def test_check_mode_writes_no_metrics(lab, capsys, mode):
    fact_on(lab, "down")
    failed, result, _out = run_module(capsys, dict(lab["args"], _ansible_check_mode=True, **mode))
    assert not failed, result
    assert os.listdir(str(lab["metrics"])) == []


def test_a_deferred_write_switches_nothing_in_the_metrics(lab, capsys):
    import fcntl

    fact_on(lab, "down")
    with open(lab["path"] / "lock", "a", encoding="utf-8") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        failed, result, _out = run_module(capsys, dict(lab["args"], write=True, lock_wait_s=1))
    assert not failed and result["deferred"]
    text = prom(lab)
    assert "switches_total" not in text and "gpulab_mirror_active_info" not in text
    assert 'gpulab_mirror_probe_success{mirror="down",service="pypi"} 0' in text


def test_an_unusable_metrics_dir_is_a_warning_and_the_choice_is_recorded(lab, capsys):
    missing = str(lab["path"] / "no-such-dir")
    failed, result, _out = run_module(capsys, dict(lab["args"], record=True, metrics_dir=missing))
    assert not failed and result["changed"] is True
    assert json.loads((lab["path"] / "gpulab_mirrors.fact").read_text()) == result["fact"]
    [warning] = [text for text in warning_texts(result) if "gpulab_metrics_dir" in text]
    assert warning.startswith("gpulab_metrics_dir: %s does not exist" % missing) and "\n" not in warning


def test_no_metrics_dir_writes_no_metrics(lab, capsys):
    failed, _result, _out = run_module(capsys, dict(lab["args"], record=True, metrics_dir=""))
    assert not failed and os.listdir(str(lab["metrics"])) == []
