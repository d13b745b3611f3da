# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_health_host against fake commands: the fixtures' fake nvidia-smi, a journalctl, a dmesg that is denied."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import gpu_health_host as host
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health import assess, build_config

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu-health"))
FAKE_SMI = os.path.join(FIXTURES, "fake-nvidia-smi")


def script(directory, name, body):
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    """PATH is one empty directory and there is no fallback: only the fakes a test writes exist."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.setattr(host, "FALLBACK_DIRS", ())
    monkeypatch.setenv("GPULAB_FAKE_SMI_XML", os.path.join(FIXTURES, "h100-healthy.xml"))
    shutil.copy(FAKE_SMI, str(directory / "nvidia-smi"))
    return directory


def settings(**extra):
    base = {"kernel_log_sources": ["journal", "/nonexistent/kern.log", "dmesg"], "command_timeout_s": 2}
    base.update(extra)
    return build_config(base)


def test_the_command_first_on_path_wins(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    script(first, "nvidia-smi", "exit 0")
    script(second, "nvidia-smi", "exit 0")
    monkeypatch.setattr(host, "FALLBACK_DIRS", (str(second),))
    assert host.find_command("nvidia-smi", search_path=str(first)) == str(first / "nvidia-smi")
    assert host.find_command("nvidia-smi", search_path=str(tmp_path / "none")) == str(second / "nvidia-smi")
    assert host.find_command(str(second / "nvidia-smi")) == str(second / "nvidia-smi")
    assert host.find_command(str(tmp_path / "missing")) is None


def test_the_fake_nvidia_smi_serves_the_fixture(bin_dir):
    smi = host.observe_smi(settings())
    assert smi["state"] == "ok" and smi["path"] == str(bin_dir / "nvidia-smi")
    assert "<nvidia_smi_log>" in smi["xml"]
    assert host.observe_nvlink(smi["path"], 2) == {"state": "ok", "text": ""}


def test_a_hung_nvidia_smi_is_cut_at_the_deadline(bin_dir, monkeypatch):
    monkeypatch.setenv("GPULAB_FAKE_SMI_SLEEP", "30")
    started = time.monotonic()
    smi = host.observe_smi(settings(command_timeout_s=0.5))
    assert smi["state"] == "timed_out" and "did not finish within 0.5 s" in smi["message"]
    assert time.monotonic() - started < 5


def test_nvidia_smi_failures_are_classified(bin_dir):
    script(bin_dir, "nvidia-smi", "echo 'Failed to initialize NVML: Driver/library version mismatch'; exit 18")
    assert host.observe_smi(settings())["state"] == "version_mismatch"
    assert host.observe_smi(settings(nvidia_smi="nvidia-smi-absent"))["state"] == "absent"


def test_the_journal_is_read_first(bin_dir):
    script(bin_dir, "journalctl", 'echo "$*" > %s/journal-args; /bin/cat %s' % (bin_dir, os.path.join(FIXTURES, "journal-xid-unlisted.txt")))
    log = host.observe_kernel_log(["journal", "dmesg"], 2)
    assert log["source"] == "journal" and "Xid" in log["text"] and not log["whole_file"]
    assert (bin_dir / "journal-args").read_text().split() == ["-k", "-b", "0", "-o", "short-monotonic", "--no-pager", "-q"]


def test_denied_dmesg_and_no_journal_fall_back_to_kern_log(bin_dir):
    script(bin_dir, "journalctl", "echo 'No journal files were found.' >&2; exit 1")
    script(bin_dir, "dmesg", "echo 'dmesg: read kernel buffer failed: Operation not permitted' >&2; exit 1")
    kern = os.path.join(FIXTURES, "kern-xid79.log")
    log = host.observe_kernel_log(["journal", "dmesg", kern], 2)
    assert (log["source"], log["whole_file"]) == (kern, True)
    assert log["tried"] == ["journal: No journal files were found.",
                            "dmesg: dmesg: read kernel buffer failed: Operation not permitted"]


def test_no_readable_log_says_why_for_each_source(bin_dir, tmp_path):
    script(bin_dir, "dmesg", "echo 'dmesg: read kernel buffer failed: Operation not permitted' >&2; exit 1")
    (tmp_path / "empty.log").write_text("")
    log = host.observe_kernel_log(["journal", str(tmp_path / "empty.log"), "/nonexistent/kern.log", "dmesg"], 2)
    assert log["text"] is None
    sources = [reason.split(":")[0] for reason in log["tried"]]
    assert sources == ["journal", str(tmp_path / "empty.log"), "/nonexistent/kern.log", "dmesg"]


def test_dcgmi_runs_only_where_installed_and_at_the_configured_level(bin_dir):
    assert host.observe_dcgm(1, 2) is None
    script(bin_dir, "dcgmi", 'echo "{\\"args\\": \\"$*\\"}"')
    assert host.observe_dcgm(1, 2) == {"state": "ok", "rc": 0, "text": '{"args": "diag -r 1 -j"}\n'}
    assert host.observe_dcgm(0, 2) is None


def test_observe_then_assess_a_container_without_any_kernel_log(bin_dir):
    script(bin_dir, "dmesg", "echo 'dmesg: read kernel buffer failed: Operation not permitted' >&2; exit 1")
    config = settings()
    health = assess(host.observe(config), config)
    assert health["verdict"] == "unknown"
    assert [c["id"] for c in health["checks"] if c["severity"] != "pass"] == ["xid"]


def test_a_huge_log_file_is_read_from_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "MAX_LOG_BYTES", 4096)
    path = tmp_path / "kern.log"
    path.write_text("Dec  4 08:00:00 gpu07 kernel: noise\n" * 10000 + open(os.path.join(FIXTURES, "kern-xid79.log")).read()[-300:])
    log = host.observe_kernel_log([str(path)], 2)
    assert len(log["text"]) <= 4096 and log["text"].rstrip().endswith("GPU has fallen off the bus.")


def test_the_fake_serves_the_text_report_for_nvidia_gpu_facts(bin_dir, monkeypatch):
    text = os.path.join(FIXTURES, "..", "nvidia-smi", "h100-80gb-hbm3-580-open.q.txt")
    monkeypatch.setenv("GPULAB_FAKE_SMI_Q", text)
    state, rc, out = host._run([str(bin_dir / "nvidia-smi"), "-q"], 2)
    assert (state, rc) == ("ok", 0) and out.startswith(open(text).read()[:40])
    state, rc, out = host._run([str(bin_dir / "nvidia-smi"), "--query-gpu=index"], 2)
    assert rc == 2 and "unsupported arguments" in out
