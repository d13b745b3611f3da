# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/validate.yml's gpu_health check, run as an operator runs it.

A real ansible-playbook against a local-connection host. This machine has no nvidia-smi, so the three
driver checks are SKIPPED; the inventory says the host has one GPU (gpulab_gpu_expected_count), so the
health assessment runs anyway, with the fake nvidia-smi serving a recorded H100 report
(tests/fixtures/gpu-health) and a recorded kernel log.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "gpu-health")
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
VALIDATE = os.path.join(ROOT, "playbooks", "validate.yml")


def validate(tmp_path, xml, extra=None, args=()):
    """Run validate.yml on one local host whose nvidia-smi serves *xml*; (rc, stdout + stderr)."""
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "gpulab_gpu_expected_count": 1,
            "gpu_health_nvidia_smi": os.path.join(FIXTURES, "fake-nvidia-smi"),
            # application Xids (13, 31) only: ignored by the shipped policy
            "gpu_health_kernel_log_sources": [os.path.join(FIXTURES, "dmesg-xid13.txt")]}
    host.update(extra or {})
    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"gpu1": host}}}))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "GPULAB_FAKE"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible-tmp"),
               GPULAB_FAKE_SMI_XML=os.path.join(FIXTURES, xml))
    out = subprocess.run([PLAYBOOK, "-i", str(inventory), VALIDATE] + list(args), cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    return out.returncode, out.stdout + out.stderr


def row(text, check):
    """(result, detail) of gpu1's row for *check* in the summary table."""
    found = re.search(r'"gpu1\s+%s\s+(\S+)\s+(.*?)",?\n' % check, text)
    assert found, text
    return found.group(1), found.group(2)


def test_a_degraded_host_is_named_with_its_problem_and_failed(tmp_path):
    rc, text = validate(tmp_path, "h100-remap-pending.xml")
    assert rc != 0, text
    assert row(text, "gpu_health") == ("FAIL", "degraded: GPU 0 remapped_rows_pending: Yes -> reset")
    # the three driver checks keep their behaviour: no nvidia-smi on this machine -> SKIPPED, not failed
    assert row(text, "driver_loaded")[0] == row(text, "nvidia_smi")[0] == row(text, "docker_gpus")[0] == "SKIPPED"
    # the table of checks that did not pass, below the host's gpu_health row
    assert re.search(r'"\s+0\s+remapped_rows_pending\s+critical\s+reset\s+Yes\s+No\s', text), text
    assert re.search(r"gpu_health failed: .*gpu_health=FAIL; gpu_health: degraded: GPU 0 remapped_rows_pending", text), text
    assert re.search(r"gpu1\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", text), text


def test_a_healthy_host_passes(tmp_path):
    rc, text = validate(tmp_path, "h100-healthy.xml")
    assert rc == 0, text
    result, detail = row(text, "gpu_health")
    assert result == "PASS" and detail.startswith("healthy: 1 GPUs,"), text
    assert "gpu_health=PASS" in text


@pytest.mark.parametrize("fail_on_warning, rc_expected", [(None, 0), ("true", 2)])
def test_warnings_fail_the_host_only_with_gpulab_fail_on_warning(tmp_path, fail_on_warning, rc_expected):
    args = ["-e", "gpulab_fail_on_warning=%s" % fail_on_warning] if fail_on_warning else []
    rc, text = validate(tmp_path, "h100-clocks-hw-slowdown.xml", args=args)
    assert rc == rc_expected, text
    assert row(text, "gpu_health")[0] == "WARN"
    assert re.search(r'"\s+0\s+clock_events\s+warn\s', text), text


def test_a_host_without_gpus_is_skipped(tmp_path):
    rc, text = validate(tmp_path, "h100-remap-pending.xml", {"gpulab_gpu_expected_count": None})
    assert rc == 0, text
    assert row(text, "gpu_health") == ("SKIPPED", "no NVIDIA driver (nvidia-smi not found)")


def test_a_bad_threshold_fails_naming_the_variable(tmp_path):
    rc, text = validate(tmp_path, "h100-healthy.xml", {"gpulab_gpu_health_thresholds": {"ecc_dram_corrected_max": "many"}})
    assert rc != 0, text
    assert "gpulab_gpu_health_thresholds" in text and "ecc_dram_corrected_max" in text, text
