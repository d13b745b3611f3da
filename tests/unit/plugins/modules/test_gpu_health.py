# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module gpulab.provision.gpu_health: main() with the fixtures' fake nvidia-smi, and once through real Ansible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

import promtool

from ansible.module_utils.testing import patch_module_args
from ansible_collections.gpulab.provision.plugins.module_utils import gpu_health_host
from ansible_collections.gpulab.provision.plugins.modules import gpu_health

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "gpu-health")
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")


def shipped_policy():
    with open(os.path.join(ROOT, "roles", "gpu_health", "vars", "main.yml"), "r", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["_gpu_health_xid_policy"]


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    directory = tmp_path / "bin"
    directory.mkdir()
    shutil.copy(os.path.join(FIXTURES, "fake-nvidia-smi"), str(directory / "nvidia-smi"))
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.setattr(gpu_health_host, "FALLBACK_DIRS", ())
    return tmp_path


def run_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            gpu_health.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_a_degraded_node_is_reported_without_change(fake_host, capsys, monkeypatch):
    monkeypatch.setenv("GPULAB_FAKE_SMI_XML", os.path.join(FIXTURES, "h100-remap-pending.xml"))
    code, result = run_module({"xid_policy": shipped_policy(), "expected_count": 1, "_ansible_check_mode": True,
                               "kernel_log_sources": [os.path.join(FIXTURES, "dmesg-xid48-remap.txt")]}, capsys)
    assert code == 0 and result["changed"] is False
    health = result["health"]
    assert health["verdict"] == "degraded"
    assert sorted((c["id"], c["action"]) for c in health["checks"] if c["severity"] == "critical") == \
        [("remapped_rows_pending", "reset"), ("xid", "reset")]
    assert result["config"]["expected_count"] == 1


def test_validate_only_runs_nothing_and_returns_the_config(fake_host, capsys, monkeypatch):
    monkeypatch.setenv("GPULAB_FAKE_SMI_XML", "/nonexistent")
    code, result = run_module({"xid_policy": shipped_policy(), "xid_policy_overrides": {"79": {"severity": "warn"}},
                               "validate_only": True}, capsys)
    assert code == 0 and "health" not in result
    assert result["config"]["xid_policy"]["79"] == {"severity": "warn", "action": "none"}


def test_bad_settings_fail_naming_each_variable(capsys):
    code, result = run_module({"thresholds": {"retired_pages_max": "many"}, "disabled_checks": ["gpu_temp"],
                               "xid_policy_overrides": {"79": {"severity": "critical", "action": "rma"}}}, capsys)
    assert code == 1 and result["failed"] is True
    assert len(result["problems"]) == 3
    for variable in ("gpulab_gpu_health_thresholds.retired_pages_max", "gpulab_gpu_health_disabled_checks",
                     "gpulab_gpu_health_xid_policy.79.action"):
        assert variable in result["msg"]


def test_through_ansible_with_the_healthy_recording(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(os.path.join(FIXTURES, "fake-nvidia-smi"), str(bin_dir / "nvidia-smi"))
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]), ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_NOCOLOR="1",
               GPULAB_FAKE_SMI_XML=os.path.join(FIXTURES, "h100-healthy.xml"))
    args = json.dumps({"expected_count": 1, "driver_pin": "580", "command_timeout_s": 5,
                       "kernel_log_sources": [os.path.join(FIXTURES, "dmesg-xid13.txt")], "xid_policy": shipped_policy()})
    done = subprocess.run([ANSIBLE, "localhost", "-c", "local", "-i", "localhost,", "-m", "gpulab.provision.gpu_health",
                           "-a", args, "-e", "ansible_python_interpreter=%s" % sys.executable, "--check", "-o"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120, check=False, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.split("=>", 1)[1])
    assert result["health"]["verdict"] == "healthy" and result["changed"] is False
    assert result["health"]["gpus"][0]["uuid"] == "GPU-310b45f2-6f17-7b08-158e-2ec04b61f379"
    assert not [c for c in result["health"]["checks"] if c["severity"] != "pass"]


def warning_text(warning):
    """A module warning's text: a string before ansible-core 2.19, a WarningSummary dict from 2.19 on."""
    return warning if isinstance(warning, str) else warning["event"]["msg"]


def degraded_args(**extra):
    args = {"xid_policy": shipped_policy(), "expected_count": 1,
            "kernel_log_sources": [os.path.join(FIXTURES, "dmesg-xid-repeated.txt")]}
    args.update(extra)
    return args


def test_metrics_dir_gets_the_prom_file_and_the_result_says_where(fake_host, capsys, monkeypatch):
    monkeypatch.setenv("GPULAB_FAKE_SMI_XML", os.path.join(FIXTURES, "h100-remap-pending.xml"))
    metrics_dir = fake_host / "textfile"
    metrics_dir.mkdir()
    code, result = run_module(degraded_args(metrics_dir=str(metrics_dir)), capsys)
    assert code == 0 and result["changed"] is False and result["health"]["verdict"] == "degraded"
    assert result["metrics"] == {"path": str(metrics_dir / "gpulab_gpu_health.prom"), "changed": True}
    assert not result.get("warnings")
    text = (metrics_dir / "gpulab_gpu_health.prom").read_text()
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    promtool.check_metrics(text)
    assert "\ngpulab_gpu_health_verdict 1\n" in text
    assert 'gpulab_gpu_xid_events_total{gpu="0",xid="63"} 3' in text


def test_an_unusable_metrics_dir_is_a_warning_with_the_same_verdict(fake_host, capsys, monkeypatch):
    monkeypatch.setenv("GPULAB_FAKE_SMI_XML", os.path.join(FIXTURES, "h100-remap-pending.xml"))
    code, plain = run_module(degraded_args(), capsys)
    blocked = fake_host / "textfile"
    blocked.mkdir()
    (blocked / ".gpulab-gpu_health.json").mkdir()  # the state cannot be replaced, even by root
    for directory in (str(fake_host / "missing"), str(blocked)):
        code, result = run_module(degraded_args(metrics_dir=directory), capsys)
        assert code == 0 and "failed" not in result and "metrics" not in result
        assert result["health"]["verdict"] == plain["health"]["verdict"] == "degraded"
        assert result["health"]["summary"] == plain["health"]["summary"]
        # (ansible-core 2.19 keeps a process's warnings across runs of main(): this run's is the last)
        last = warning_text(result["warnings"][-1])
        assert last.startswith("GPU health metrics not written: gpulab_metrics_dir: ") and directory in last
    assert not (blocked / "gpulab_gpu_health.prom").exists()


def test_check_mode_and_validate_only_write_no_metrics(fake_host, capsys, monkeypatch):
    monkeypatch.setenv("GPULAB_FAKE_SMI_XML", os.path.join(FIXTURES, "h100-healthy.xml"))
    metrics_dir = fake_host / "textfile"
    metrics_dir.mkdir()
    code, result = run_module(degraded_args(metrics_dir=str(metrics_dir), _ansible_check_mode=True), capsys)
    assert code == 0 and result["health"]["verdict"] == "degraded" and "metrics" not in result
    code, result = run_module(degraded_args(metrics_dir=str(metrics_dir), validate_only=True), capsys)
    assert code == 0 and "health" not in result
    assert os.listdir(str(metrics_dir)) == []
