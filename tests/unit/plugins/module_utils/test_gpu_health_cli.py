# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab-gpu-health's main(): exit codes, --json, --slurm against a fake scontrol that keeps the node's state,
and --metrics-dir."""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest

import promtool
from ansible_collections.gpulab.provision.plugins.module_utils import gpu_health_cli as cli
from ansible_collections.gpulab.provision.plugins.module_utils import gpu_health_host as host

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu-health"))
UUID = "GPU-310b45f2-6f17-7b08-158e-2ec04b61f379"

# A fake scontrol: `show node N` prints the node from the state file; `update` rewrites it and logs the call.
SCONTROL = r"""#!/bin/sh
PATH=$PATH:/usr/bin:/bin
state_file=%(dir)s/node.state
printf '%%s\n' "$*" >> %(dir)s/scontrol.log
case "$1" in
  show)
    state=$(sed -n 1p "$state_file"); reason=$(sed -n 2p "$state_file")
    echo "NodeName=$3 Arch=x86_64 CoresPerSocket=16"
    echo "   State=$state ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A"
    [ -n "$reason" ] && echo "   Reason=$reason [root@2026-12-04T10:00:00]"
    exit 0 ;;
  update)
    case "$3" in
      state=drain) printf 'IDLE+DRAIN\n%%s\n' "${4#reason=}" > "$state_file" ;;
      state=resume) printf 'IDLE\n\n' > "$state_file" ;;
    esac ;;
esac
"""


@pytest.fixture
def node(tmp_path, monkeypatch):
    directory = tmp_path / "bin"
    directory.mkdir()
    shutil.copy(os.path.join(FIXTURES, "fake-nvidia-smi"), str(directory / "nvidia-smi"))
    (directory / "scontrol").write_text(SCONTROL % {"dir": str(tmp_path)})
    (directory / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.setattr(host, "FALLBACK_DIRS", ())
    (tmp_path / "node.state").write_text("IDLE\n\n")
    config = {"kernel_log_sources": [os.path.join(FIXTURES, "dmesg-xid13.txt")], "command_timeout_s": 5,
              "xid_policy": {"79": {"severity": "critical", "action": "reboot"},
                             "13": {"severity": "ignore"}, "31": {"severity": "ignore"}}}
    (tmp_path / "gpu-health.json").write_text(json.dumps(config))
    return tmp_path


def serve(monkeypatch, name):
    monkeypatch.setenv("GPULAB_FAKE_SMI_XML", os.path.join(FIXTURES, name))


def run(node, *args, environ=None):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--config", str(node / "gpu-health.json")] + list(args), environ=environ or {}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def calls(node):
    log = node / "scontrol.log"
    return log.read_text().splitlines() if log.exists() else []


def test_exit_codes_follow_the_verdict(node, monkeypatch):
    serve(monkeypatch, "h100-healthy.xml")
    assert run(node)[0] == 0
    serve(monkeypatch, "h100-remap-pending.xml")
    code, out, _err = run(node)
    assert code == 1 and "remapped_rows_pending" in out
    serve(monkeypatch, "h100-ecc-unknown-error.xml")
    assert run(node)[0] == 2


def test_json_is_the_assessment(node, monkeypatch):
    serve(monkeypatch, "h100-pcie-x8.xml")
    code, out, _err = run(node, "--json")
    health = json.loads(out)
    assert code == 1 and health["verdict"] == "degraded"
    assert [(c["id"], c["gpu"], c["action"]) for c in health["checks"] if c["severity"] != "pass"] == \
        [("pcie_link_width", 0, "drain")]


def test_a_bad_configuration_exits_2_naming_the_variable(node):
    (node / "gpu-health.json").write_text(json.dumps({"disabled_checks": ["nope"]}))
    code, _out, err = run(node)
    assert code == 2 and "gpulab_gpu_health_disabled_checks" in err


def test_slurm_drains_a_degraded_node_then_resumes_it_once_healthy(node, monkeypatch):
    serve(monkeypatch, "h100-remap-pending.xml")
    code, out, _err = run(node, "--slurm", environ={"SLURMD_NODENAME": "gpu07"})
    assert code == 1
    drain = calls(node)[-1]
    assert drain.startswith("update nodename=gpu07 state=drain reason=gpulab: degraded: GPU 0 remapped_rows_pending")
    assert "slurm: gpu07: drain" in out
    run(node, "--slurm", "--node", "gpu07")  # still degraded, same reason: nothing to update
    assert calls(node)[-1] == "show node gpu07"
    serve(monkeypatch, "h100-healthy.xml")
    assert run(node, "--slurm", "--node", "gpu07")[0] == 0
    assert calls(node)[-1] == "update nodename=gpu07 state=resume"
    assert (node / "node.state").read_text().startswith("IDLE\n")


def test_a_drain_by_an_admin_is_never_resumed_nor_overwritten(node, monkeypatch):
    (node / "node.state").write_text("IDLE+DRAIN\nreplacing the PSU (ticket 4711)\n")
    serve(monkeypatch, "h100-healthy.xml")
    code, out, _err = run(node, "--slurm", "--node", "gpu07")
    assert code == 0 and calls(node) == ["show node gpu07"]
    assert "drained by someone else (replacing the PSU (ticket 4711)): not resumed" in out
    serve(monkeypatch, "h100-remap-pending.xml")
    assert run(node, "--slurm", "--node", "gpu07")[0] == 1
    assert calls(node) == ["show node gpu07"] * 2
    assert (node / "node.state").read_text() == "IDLE+DRAIN\nreplacing the PSU (ticket 4711)\n"


def test_unknown_leaves_slurm_alone(node, monkeypatch):
    serve(monkeypatch, "h100-ecc-unknown-error.xml")
    (node / "node.state").write_text("IDLE+DRAIN\ngpulab: degraded: earlier\n")
    code, out, _err = run(node, "--slurm", "--node", "gpu07")
    assert code == 2 and calls(node) == ["show node gpu07"] and "left as it is" in out


@pytest.mark.parametrize("verdict, state, reason, plan", [
    ("degraded", "IDLE", None, "drain"),
    ("degraded", "MIXED+DRAIN", "gpulab: degraded: old cause", "drain"),  # ours, new cause: the reason is updated
    ("degraded", "IDLE+DRAIN", "maintenance", None),
    ("healthy", "IDLE+DRAIN", "gpulab: degraded: x", "resume"),
    ("healthy", "DRAINED", "gpulab: degraded: x", "resume"),
    ("healthy", "IDLE", None, None),
    ("healthy", "IDLE+DRAIN", "gpulab-ish but not ours", None),
    ("unknown", "IDLE+DRAIN", "gpulab: degraded: x", None),
])
def test_slurm_plan(verdict, state, reason, plan):
    assert cli.slurm_plan(verdict, "degraded: now", state, reason)[0] == plan


def test_node_state_reads_scontrol_show_node():
    text = ("NodeName=gpu07 Arch=x86_64\n   State=IDLE+DRAIN ThreadsPerCore=1\n"
            "   Reason=gpulab: degraded: GPU 0 xid: 79 x1 -> reboot [root@2026-12-04T10:00:00]\n")
    assert cli.node_state(text) == ("IDLE+DRAIN", "gpulab: degraded: GPU 0 xid: 79 x1 -> reboot")
    assert cli.node_state("NodeName=n State=IDLE\n") == ("IDLE", None)


def test_the_drain_reason_is_bounded():
    reason = cli.drain_reason("degraded: " + "x" * 500)
    assert reason.startswith("gpulab: degraded: ") and len(reason) == cli.REASON_MAX


def test_the_node_name_comes_from_the_option_then_slurmd_then_the_host_name():
    assert cli.node_name("n1", {"SLURMD_NODENAME": "n2"}) == "n1"
    assert cli.node_name(None, {"SLURMD_NODENAME": "n2"}) == "n2"
    assert "." not in cli.node_name(None, {})


def prom(directory, monkeypatch):
    """The written file's text, checked by promtool (found on the usual PATH, not the fixture's)."""
    text = (directory / "gpulab_gpu_health.prom").read_text()
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    promtool.check_metrics(text)
    return text


def test_metrics_dir_writes_the_prom_file_with_the_verdict(node, monkeypatch):
    metrics_dir = node / "textfile"
    metrics_dir.mkdir()
    serve(monkeypatch, "h100-remap-pending.xml")
    code, _out, err = run(node, "--metrics-dir", str(metrics_dir))
    assert code == 1 and err == ""
    text = prom(metrics_dir, monkeypatch)
    assert "\ngpulab_gpu_health_verdict 1\n" in text
    assert 'gpulab_gpu_check_status{check="remapped_rows_pending",gpu="0",uuid="%s"} 2' % UUID in text
    assert 'gpulab_gpu_xid_events_total{gpu="0",xid="13"} 1' in text
    serve(monkeypatch, "h100-healthy.xml")
    monkeypatch.setenv("PATH", str(node / "bin"))
    assert run(node, "--metrics-dir", str(metrics_dir))[0] == 0
    assert "\ngpulab_gpu_health_verdict 0\n" in prom(metrics_dir, monkeypatch)


def test_without_metrics_dir_nothing_is_written(node, monkeypatch):
    serve(monkeypatch, "h100-healthy.xml")
    before = sorted(os.listdir(str(node)))
    code, _out, err = run(node)
    assert code == 0 and err == ""
    assert sorted(os.listdir(str(node))) == before


def test_a_metrics_problem_is_a_warning_the_verdict_and_slurm_unchanged(node, monkeypatch):
    serve(monkeypatch, "h100-remap-pending.xml")
    code, out, err = run(node, "--slurm", "--node", "gpu07", "--metrics-dir", str(node / "missing"))
    assert code == 1 and "slurm: gpu07: drain" in out
    assert calls(node)[-1].startswith("update nodename=gpu07 state=drain")
    assert err.startswith("gpulab-gpu-health: warning: GPU health metrics not written: gpulab_metrics_dir: ")
    assert len(err.splitlines()) == 1
    assert not (node / "missing").exists()


def test_a_bad_configuration_reads_unknown_in_the_metrics(node, monkeypatch):
    metrics_dir = node / "textfile"
    metrics_dir.mkdir()
    (node / "gpu-health.json").write_text(json.dumps({"disabled_checks": ["nope"]}))
    code, _out, err = run(node, "--metrics-dir", str(metrics_dir))
    assert code == 2 and "gpulab_gpu_health_disabled_checks" in err
    text = prom(metrics_dir, monkeypatch)
    assert "\ngpulab_gpu_health_verdict 2\n" in text and "gpulab_gpu_check_status" not in text
