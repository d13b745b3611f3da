# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role gpulab.provision.gpu_health through real ansible-playbook runs on this machine (local connection,
every path under a temp dir), and the gpulab-gpu-health command it installs, run with the system python3."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "gpu-health")
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON) or os.geteuid() != 0,
                                reason="installs files owned by root and runs the system python3")


def host_vars(base, **extra):
    values = {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "gpu_health_nvidia_smi": str(base / "bin" / "nvidia-smi"),
        "gpu_health_kernel_log_sources": [os.path.join(FIXTURES, "dmesg-xid13.txt")],
        "gpu_health_slurm_scontrol": "/nonexistent/scontrol",
        "gpu_health_bin_path": str(base / "usr-local-bin" / "gpulab-gpu-health"),
        "gpu_health_slurm_bin_path": str(base / "usr-local-sbin" / "gpulab-gpu-health-slurm"),
        "gpu_health_config_path": str(base / "etc" / "gpulab" / "gpu-health.json"),
        "gpu_health_lib_dir": str(base / "usr-lib"),
        "gpu_health_build_dir": str(base / "build"),
        "gpu_health_python": SYSTEM_PYTHON,
        "gpulab_metrics_dir": str(base / "textfile"),
    }
    values.update(extra)
    return values


def playbook(tmp_path, hosts, tasks_from="main"):
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
    play = tmp_path / ("play-%s.yml" % tasks_from)
    play.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role: {name: gpulab.provision.gpu_health, tasks_from: %s}\n"
        "    - ansible.builtin.debug: {var: gpulab_report_gpu_health}\n" % tasks_from)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_STDOUT_CALLBACK="default",
               GPULAB_FAKE_SMI_XML=os.path.join(FIXTURES, "h100-remap-pending.xml"))
    done = subprocess.run([PLAYBOOK, "-i", str(inventory), str(play)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env, timeout=300, check=False, text=True)
    return done.returncode, done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One host installed by the role, then the role again (the second run must change nothing)."""
    tmp_path = tmp_path_factory.mktemp("gpu-health-role")
    (tmp_path / "bin").mkdir()
    (tmp_path / "textfile").mkdir()
    shutil.copy(os.path.join(FIXTURES, "fake-nvidia-smi"), str(tmp_path / "bin" / "nvidia-smi"))
    hosts = {"gpu07": host_vars(tmp_path, gpulab_gpu_expected_count=1, gpulab_gpu_driver_pin="580",
                                gpulab_gpu_health_thresholds={"ecc_sram_corrected_max": 20000},
                                gpulab_gpu_health_xid_policy={94: {"severity": "ignore", "action": "none"}})}
    first = playbook(tmp_path, hosts)
    second = playbook(tmp_path, hosts)
    return tmp_path, first, second


def command(base, fixture, *args):
    env = {"PATH": "/usr/bin:/bin", "GPULAB_FAKE_SMI_XML": os.path.join(FIXTURES, fixture)}
    return subprocess.run([str(base / "usr-local-bin" / "gpulab-gpu-health")] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, timeout=60, check=False, text=True)


def test_the_role_installs_the_command_and_its_configuration(installed):
    base, (code, out), _second = installed
    assert code == 0, out
    config_path = base / "etc" / "gpulab" / "gpu-health.json"
    config = json.loads(config_path.read_text())
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o644
    assert (config["expected_count"], config["driver_pin"]) == (1, "580")
    assert config["thresholds"]["ecc_sram_corrected_max"] == 20000
    assert config["thresholds"]["ecc_dram_corrected_max"] == 20000000  # the documented default
    assert config["xid_policy"]["94"]["severity"] == "ignore" and config["xid_policy"]["79"]["action"] == "reboot"
    for path in ("usr-local-bin/gpulab-gpu-health", "usr-local-sbin/gpulab-gpu-health-slurm"):
        assert stat.S_IMODE((base / path).stat().st_mode) == 0o755
    assert (base / "usr-lib" / "gpulab-gpu-health.pyz").is_file()


def test_a_second_run_changes_nothing(installed):
    _base, _first, (code, out) = installed
    assert code == 0, out
    assert "changed=0" in out.split("PLAY RECAP")[1], out


def test_the_installed_command_exit_codes_and_json(installed):
    base = installed[0]
    healthy = command(base, "h100-healthy.xml")
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.startswith("gpulab-gpu-health: healthy: 1 GPUs")
    degraded = command(base, "h100-remap-pending.xml", "--json")
    assert degraded.returncode == 1, degraded.stderr
    health = json.loads(degraded.stdout)
    assert [(c["id"], c["severity"], c["action"]) for c in health["checks"] if c["severity"] != "pass"] == \
        [("remapped_rows_pending", "critical", "reset")]
    unknown = command(base, "h100-ecc-unknown-error.xml")
    assert unknown.returncode == 2 and "unknown" in unknown.stdout
    missing = command(base, "h100x8-healthy.xml")  # 8 GPUs where 1 is expected
    assert missing.returncode == 1 and "gpu_count" in missing.stdout


def test_the_zipapp_runs_on_python3_without_site_packages(installed):
    base = installed[0]
    done = subprocess.run([SYSTEM_PYTHON, "-I", "-S", str(base / "usr-lib" / "gpulab-gpu-health.pyz"), "--config",
                           str(base / "etc" / "gpulab" / "gpu-health.json"), "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False, text=True,
                          env={"PATH": "/usr/bin:/bin", "GPULAB_FAKE_SMI_XML": os.path.join(FIXTURES, "h100-healthy.xml")})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] == "healthy"


def test_the_slurm_wrapper_adds_slurm(installed):
    base = installed[0]
    text = (base / "usr-local-sbin" / "gpulab-gpu-health-slurm").read_text()
    assert 'exec %s --slurm "$@"' % (base / "usr-local-bin" / "gpulab-gpu-health") in text


def test_assess_sets_the_fact_and_the_report_entry(installed):
    base = installed[0]
    hosts = {"gpu07": host_vars(base, gpulab_gpu_expected_count=1)}
    code, out = playbook(base, hosts, tasks_from="assess")
    assert code == 0, out
    assert "verdict: degraded" in out and "remapped_rows_pending: Yes -> reset" in out


def test_bad_input_fails_naming_the_variable_and_installs_nothing(tmp_path):
    hosts = {
        "wrong-type": host_vars(tmp_path / "a", gpulab_gpu_health_thresholds={"ecc_sram_corrected_max": "lots"}),
        "unknown-check": host_vars(tmp_path / "b", gpulab_gpu_health_disabled_checks=["xid", "gpu_temp"]),
        "unknown-action": host_vars(tmp_path / "c",
                                    gpulab_gpu_health_xid_policy={79: {"severity": "critical", "action": "rma"}}),
    }
    code, out = playbook(tmp_path, hosts)
    assert code != 0
    assert "gpulab_gpu_health_thresholds.ecc_sram_corrected_max must be a whole number" in out
    assert "gpulab_gpu_health_disabled_checks" in out and "gpu_temp" in out
    assert "gpulab_gpu_health_xid_policy.79.action 'rma' is not one of" in out
    assert "failed=1" in out.split("PLAY RECAP")[1]
    for name in ("a", "b", "c"):
        assert not (tmp_path / name).exists()


def test_the_installed_command_writes_the_metrics_file(installed):
    base = installed[0]
    prom = base / "textfile" / "gpulab_gpu_health.prom"
    text = (base / "usr-local-bin" / "gpulab-gpu-health").read_text()
    assert "--metrics-dir %s " % (base / "textfile") in text
    degraded = command(base, "h100-remap-pending.xml")
    assert degraded.returncode == 1 and degraded.stderr == ""
    assert "\ngpulab_gpu_health_verdict 1\n" in prom.read_text()
    assert 'gpulab_gpu_xid_events_total{gpu="0",xid="13"} 1' in prom.read_text()
    healthy = command(base, "h100-healthy.xml")
    assert healthy.returncode == 0 and "\ngpulab_gpu_health_verdict 0\n" in prom.read_text()


def test_assess_writes_the_metrics_file_and_empty_turns_it_off(installed):
    base = installed[0]
    metrics_dir = base / "textfile-assess"
    metrics_dir.mkdir()
    code, out = playbook(base, {"gpu07": host_vars(base, gpulab_gpu_expected_count=1,
                                                   gpulab_metrics_dir=str(metrics_dir))}, tasks_from="assess")
    assert code == 0, out
    assert "\ngpulab_gpu_health_verdict 1\n" in (metrics_dir / "gpulab_gpu_health.prom").read_text()
    # "" is off: no file, and no warning about a directory (as a missing one gives, below)
    code, out = playbook(base, {"gpu07": host_vars(base, gpulab_metrics_dir="")}, tasks_from="assess")
    assert code == 0 and "verdict: degraded" in out, out
    assert "gpulab_metrics_dir" not in out and "[WARNING]" not in out


def test_a_missing_metrics_dir_is_a_warning_and_the_assessment_stands(installed):
    base = installed[0]
    code, out = playbook(base, {"gpu07": host_vars(base, gpulab_gpu_expected_count=1,
                                                   gpulab_metrics_dir=str(base / "no-such-dir"))}, tasks_from="assess")
    assert code == 0, out
    assert "verdict: degraded" in out and "gpulab_metrics_dir" in out and "[WARNING]" in out
    assert not (base / "no-such-dir").exists()


def test_without_gpulab_metrics_dir_the_wrapper_has_no_metrics_option(tmp_path):
    (tmp_path / "bin").mkdir()
    shutil.copy(os.path.join(FIXTURES, "fake-nvidia-smi"), str(tmp_path / "bin" / "nvidia-smi"))
    code, out = playbook(tmp_path, {"gpu07": host_vars(tmp_path, gpulab_metrics_dir="")})
    assert code == 0, out
    assert "--metrics-dir" not in (tmp_path / "usr-local-bin" / "gpulab-gpu-health").read_text()
