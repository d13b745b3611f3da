# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nvidia_gpu_facts main() against a fake nvidia-smi that replays recorded outputs.

The fake is a shell script written into tmp_path: ``-q`` prints a ``*.q.txt`` fixture,
``--query-gpu=...`` a ``*.query-gpu.csv`` one, no argument a ``*.banner.txt`` one, each with the
exit code given, and every call is appended to a log so tests can check what the module ran.
"""

from __future__ import annotations

import json
import os
import shlex
import time

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.gpulab.provision.plugins.modules import nvidia_gpu_facts

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "nvidia-smi"))

# Exit codes: 18 is recorded with the version-mismatch output (anderskm/gputil#55); 6, 9 and 255
# are what nvidia-smi documents for "not found", "driver not loaded" and "other error" (see
# tests/fixtures/nvidia-smi/README.md). The module classifies by message, not by code.
RC_VERSION_MISMATCH = 18
RC_NO_DEVICES = 6
RC_NO_DRIVER = 9
RC_OTHER = 255


def fixture_path(name):
    return os.path.join(FIXTURES, name)


class FakeSmi:
    """Writes a fake nvidia-smi into a directory; ``calls()`` returns the argv lists it received."""

    def __init__(self, directory, name="nvidia-smi"):
        self.directory = directory
        self.path = str(directory / name)
        self.log = str(directory / (name + ".log"))

    def write(self, query=None, csv=None, banner=None, rc=0, text=None, xml=None, hang=False):
        """Each of query/csv/banner/xml: a fixture name, or None (then that call prints an error and exits 2).

        *text* (a path) replaces all four: every call prints it (failure outputs look the same for
        every sub-command). *hang*: every call prints a line and then sleeps for a minute, like an
        nvidia-smi stuck on a GPU that stopped answering.
        """
        def branch(name):
            if hang:
                return "echo 'fake nvidia-smi: hanging'; exec /bin/sleep 60"
            source = text or (fixture_path(name) if name else None)
            if source is None:
                return "echo 'fake nvidia-smi: no fixture for this call' >&2; exit 2"
            return "/bin/cat %s; exit %d" % (shlex.quote(source), rc)

        script = "\n".join([
            "#!/bin/sh",
            'printf "%%s\\n" "$*" >> %s' % shlex.quote(self.log),
            'case "$*" in',
            '  "-q -x") %s ;;' % branch(xml),
            "esac",
            'case "$1" in',
            "  -q) %s ;;" % branch(query),
            "  --query-gpu=*) %s ;;" % branch(csv),
            '  "") %s ;;' % branch(banner),
            "  *) echo \"fake nvidia-smi: unexpected arguments $*\" >&2; exit 2 ;;",
            "esac",
            "",
        ])
        with open(self.path, "w") as handle:
            handle.write(script)
        os.chmod(self.path, 0o755)
        return self

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as handle:
            return [line.split() for line in handle.read().splitlines()]


@pytest.fixture
def host(tmp_path, monkeypatch):
    """An isolated host: empty PATH dir, no /usr/bin fallback, no container, nvidia module loaded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(nvidia_gpu_facts, "DEFAULT_NVIDIA_SMI_DIRS", [str(tmp_path / "empty")])
    monkeypatch.setattr(
        nvidia_gpu_facts, "CONTAINER_MARKER_FILES", (str(tmp_path / "dockerenv"), str(tmp_path / "containerenv"))
    )
    monkeypatch.setattr(nvidia_gpu_facts, "PROC1_CGROUP", str(tmp_path / "proc1-cgroup"))
    monkeypatch.setattr(nvidia_gpu_facts, "_detect_virt", lambda module: None)
    (tmp_path / "proc1-cgroup").write_text("0::/\n")
    (tmp_path / "modules").write_text(
        "nvidia_uvm 1531904 0 - Live 0x0000000000000000 (POE)\n"
        "nvidia 56729600 2 nvidia_uvm, Live 0x0000000000000000 (POE)\n"
    )
    (tmp_path / "version").write_text("590.48.01\n")
    return tmp_path


def base_args(host, **extra):
    args = {"proc_modules": str(host / "modules"), "module_version_path": str(host / "version"),
            "driver_version_path": str(host / "proc-driver-version")}
    args.update(extra)
    return args


def run_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            nvidia_gpu_facts.main()
    result = json.loads(capsys.readouterr().out)
    return exc.value.code, result


def run_ok(args, capsys):
    code, result = run_module(args, capsys)
    assert code == 0, result
    assert result.get("failed") is not True
    assert result["changed"] is False
    assert result["ansible_facts"]["gpulab_gpu"] == result["gpu"]
    return result["gpu"]


# --------------------------------------------------------------------------- success


def test_h100_from_query(host, capsys):
    smi = FakeSmi(host / "bin").write(query="h100-80gb-hbm3.q.txt")
    gpu = run_ok(base_args(host), capsys)
    assert gpu == {
        "driver_present": True,
        "state": "ok",
        "message": None,
        "nvidia_smi_path": smi.path,
        "source": "query",
        "driver_version": "590.48.01",
        "cuda_version": "13.1",
        "gpus": [{
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-00000000-0000-0000-0000-000000000000",
            "memory_total_mib": 81559,
            "persistence_mode": True,
            "mig_mode": "Disabled",
            "ecc_mode": "Enabled",
            "pci_bus_id": "00000000:00:09.0",
        }],
        "gpu_count": 1,
        "kernel_module_loaded": True,
        "kernel_module_version": "590.48.01",
        "kernel_module_open": None,
        "in_container": False,
        "in_container_hints": [],
    }
    assert smi.calls() == [["-q"]]  # the -q report has the CUDA version: no second call


def test_mig_enabled_h100(host, capsys):
    FakeSmi(host / "bin").write(query="h100-80gb-hbm3-mig.q.txt")
    gpu = run_ok(base_args(host), capsys)
    assert [(g["mig_mode"], g["memory_total_mib"]) for g in gpu["gpus"]] == [("Enabled", 81559)]


def test_a100_x4_from_query(host, capsys):
    FakeSmi(host / "bin").write(query="a100-sxm4-80gb-x4.q.txt")
    gpu = run_ok(base_args(host), capsys)
    assert gpu["gpu_count"] == 4
    assert [g["uuid"] for g in gpu["gpus"]] == [
        "GPU-31515c3d-1414-7c2c-004a-f86a898946ac",
        "GPU-72d87681-01db-370e-567d-41afcf20fad0",
        "GPU-62989189-9e1e-ac75-4676-114f14998542",
        "GPU-011b2cfe-2b8e-1cb0-19e1-1b764e854dfc",
    ]
    assert [g["pci_bus_id"] for g in gpu["gpus"]] == [
        "00000000:68:00.0", "00000000:9E:00.0", "00000000:C2:00.0", "00000000:D4:00.0"]
    assert (gpu["driver_version"], gpu["cuda_version"]) == ("555.42.02", "12.5")


def test_consumer_gpu_without_ecc_and_persistence(host, capsys):
    FakeSmi(host / "bin").write(query="rtx-4080-super.q.txt")
    gpu = run_ok(base_args(host), capsys)
    assert gpu["gpus"][0]["name"] == "NVIDIA GeForce RTX 4080 SUPER"
    assert (gpu["gpus"][0]["persistence_mode"], gpu["gpus"][0]["ecc_mode"], gpu["gpus"][0]["mig_mode"]) == (
        False, "N/A", "N/A")


def test_source_csv_runs_the_query_and_the_banner(host, capsys):
    smi = FakeSmi(host / "bin").write(csv="a100-sxm4-80gb-x4.query-gpu.csv", banner="a100-sxm4-80gb-x4.banner.txt")
    gpu = run_ok(base_args(host, source="csv"), capsys)
    assert gpu["source"] == "csv"
    assert (gpu["driver_version"], gpu["cuda_version"], gpu["gpu_count"]) == ("555.42.02", "12.5", 4)
    assert gpu["gpus"][3]["uuid"] == "GPU-011b2cfe-2b8e-1cb0-19e1-1b764e854dfc"
    assert smi.calls() == [
        ["--query-gpu=index,name,uuid,memory.total,persistence_mode,mig.mode.current,ecc.mode.current,"
         "pci.bus_id,driver_version", "--format=csv,noheader,nounits"],
        [],
    ]


def test_auto_falls_back_to_csv_when_the_report_cannot_be_parsed(host, capsys):
    # a -q report whose last GPU section is cut off ("Attached GPUs : 4", three sections)
    with open(fixture_path("a100-sxm4-80gb-x4.q.txt")) as handle:
        text = handle.read()
    broken = host / "broken.q.txt"
    broken.write_text(text[: text.index("GPU 00000000:D4:00.0")])
    smi = FakeSmi(host / "bin").write(csv="a100-sxm4-80gb-x4.query-gpu.csv", banner="a100-sxm4-80gb-x4.banner.txt")
    with open(smi.path) as handle:
        script = handle.read().replace(
            "  -q) echo 'fake nvidia-smi: no fixture for this call' >&2; exit 2 ;;",
            "  -q) /bin/cat %s; exit 0 ;;" % shlex.quote(str(broken)),
        )
    with open(smi.path, "w") as handle:
        handle.write(script)
    gpu = run_ok(base_args(host), capsys)
    assert (gpu["state"], gpu["source"], gpu["gpu_count"], gpu["cuda_version"]) == ("ok", "csv", 4, "12.5")
    assert [call[0] if call else "" for call in smi.calls()] == ["-q", QUERY_GPU_FIRST_ARG, ""]


QUERY_GPU_ARGV = [
    "--query-gpu=index,name,uuid,memory.total,persistence_mode,mig.mode.current,ecc.mode.current,"
    "pci.bus_id,driver_version", "--format=csv,noheader,nounits"]
QUERY_GPU_FIRST_ARG = (
    "--query-gpu=index,name,uuid,memory.total,persistence_mode,mig.mode.current,ecc.mode.current,"
    "pci.bus_id,driver_version"
)


def test_source_query_fails_when_the_report_cannot_be_parsed(host, capsys):
    FakeSmi(host / "bin").write(query="h100-80gb-hbm3.banner.txt")  # not a -q report
    code, result = run_module(base_args(host, source="query"), capsys)
    assert code == 1
    assert result["failed"] is True
    assert "could not parse the output of" in result["msg"] and "NVSMI LOG" in result["msg"]


def test_unparseable_everywhere_fails_with_both_reasons(host, capsys):
    FakeSmi(host / "bin").write(query="h100-80gb-hbm3.banner.txt", csv="h100-80gb-hbm3.banner.txt")
    code, result = run_module(base_args(host), capsys)
    assert code == 1
    assert "--query-gpu" in result["msg"] and "the -q report could not be parsed either" in result["msg"]


def test_cuda_version_from_banner_when_the_report_has_none(host, capsys):
    with open(fixture_path("a10.q.txt")) as handle:
        text = handle.read()
    no_cuda = host / "a10-no-cuda.q.txt"
    no_cuda.write_text(text.replace("CUDA Version                              : 12.4\n", ""))
    smi = FakeSmi(host / "bin").write(query="a10.q.txt", banner="a10.banner.txt")
    with open(smi.path) as handle:
        script = handle.read().replace(shlex.quote(fixture_path("a10.q.txt")), shlex.quote(str(no_cuda)))
    with open(smi.path, "w") as handle:
        handle.write(script)
    gpu = run_ok(base_args(host), capsys)
    assert (gpu["source"], gpu["cuda_version"]) == ("query", "12.4")
    assert smi.calls() == [["-q"], []]


def test_check_mode_gives_the_same_answer(host, capsys):
    FakeSmi(host / "bin").write(query="a10.q.txt")
    normal = run_ok(base_args(host), capsys)
    checked = run_ok(base_args(host, _ansible_check_mode=True), capsys)
    assert checked == normal
    assert checked["gpus"][0]["uuid"] == "GPU-51ae0086-e1ac-4a20-f062-9caa44e4df6d"


# --------------------------------------------------------------------------- the recorded 580 host


H100_580_GPU = {
    "index": 0,
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-310b45f2-6f17-7b08-158e-2ec04b61f379",
    "memory_total_mib": 81559,
    "persistence_mode": True,
    "mig_mode": "Disabled",
    "ecc_mode": "Enabled",
    "pci_bus_id": "00000000:00:06.0",
}


@pytest.fixture
def host_580(host):
    """The files of the recorded host (shared/gpu-host/host.txt): module 580.159.04, open, /.dockerenv."""
    (host / "modules").write_text(
        "nvidia_uvm 1830912 - - Live 0xffffffffc080c000 (O)\n"
        "nvidia 14299136 - - Live 0xffffffffc0400000 (O)\n"
    )
    (host / "version").write_text("580.159.04\n")
    with open(fixture_path("h100-80gb-hbm3-580-open.proc-driver-version.txt")) as handle:
        (host / "proc-driver-version").write_text(handle.read())
    (host / "dockerenv").write_text("")
    (host / "proc1-cgroup").write_text("0::/process_api/core\n")
    return host


def test_recorded_580_host_from_query(host_580, capsys):
    """What shared/gpu-host/facts.txt recorded, plus the open-module flag."""
    smi = FakeSmi(host_580 / "bin").write(query="h100-80gb-hbm3-580-open.q.txt")
    gpu = run_ok(base_args(host_580), capsys)
    assert gpu == {
        "driver_present": True,
        "state": "ok",
        "message": None,
        "nvidia_smi_path": smi.path,
        "source": "query",
        "driver_version": "580.159.04",
        "cuda_version": "13.0",
        "gpus": [H100_580_GPU],
        "gpu_count": 1,
        "kernel_module_loaded": True,
        "kernel_module_version": "580.159.04",
        "kernel_module_open": True,
        "in_container": True,
        "in_container_hints": ["%s exists" % (host_580 / "dockerenv")],
    }


def test_recorded_580_host_from_xml(host_580, capsys):
    smi = FakeSmi(host_580 / "bin").write(xml="h100-80gb-hbm3-580-open.q.xml")
    gpu = run_ok(base_args(host_580, source="xml"), capsys)
    assert (gpu["state"], gpu["source"], gpu["driver_version"], gpu["cuda_version"]) == ("ok", "xml", "580.159.04", "13.0")
    assert gpu["gpus"] == [H100_580_GPU]
    assert smi.calls() == [["-q", "-x"]]


def test_source_xml_fails_when_the_report_is_not_xml(host_580, capsys):
    FakeSmi(host_580 / "bin").write(xml="h100-80gb-hbm3-580-open.q.txt")
    code, result = run_module(base_args(host_580, source="xml"), capsys)
    assert code == 1
    assert "could not parse the output of" in result["msg"] and "-q -x" in result["msg"]


def test_recorded_580_host_from_its_header_csv(host_580, capsys):
    # the CSV recorded on the host has a header and another field list: read by column name
    FakeSmi(host_580 / "bin").write(csv="h100-80gb-hbm3-580-open.query-gpu-header.csv",
                                    banner="h100-80gb-hbm3-580-open.banner.txt")
    gpu = run_ok(base_args(host_580, source="csv"), capsys)
    assert (gpu["driver_version"], gpu["cuda_version"]) == ("580.159.04", "13.0")
    assert gpu["gpus"] == [dict(H100_580_GPU, persistence_mode=None, ecc_mode="N/A")]


def test_proprietary_module_is_not_open(host, capsys):
    (host / "proc-driver-version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  440.95.01  Thu May 28 07:03:08 UTC 2020\n")
    FakeSmi(host / "bin").write(query="a10.q.txt")
    assert run_ok(base_args(host), capsys)["kernel_module_open"] is False


# --------------------------------------------------------------------------- a hung nvidia-smi


@pytest.mark.parametrize("source, first_call", [
    ("auto", ["-q"]), ("query", ["-q"]), ("xml", ["-q", "-x"]), ("csv", QUERY_GPU_ARGV)])
def test_hung_nvidia_smi_is_killed_and_reported(host, capsys, source, first_call):
    smi = FakeSmi(host / "bin").write(hang=True)
    start = time.monotonic()
    gpu = run_ok(base_args(host, source=source, timeout=1), capsys)
    elapsed = time.monotonic() - start
    assert elapsed < 6  # 1 s deadline + 2 s kill grace at most, never the fake's 60 s
    assert gpu["state"] == "timed_out"
    assert gpu["driver_present"] is True
    assert gpu["message"].startswith("'%s %s' did not finish within 1 s and was killed" % (smi.path, " ".join(first_call)))
    assert "hung" in gpu["message"]
    assert (gpu["gpus"], gpu["gpu_count"], gpu["source"]) == ([], 0, None)
    assert gpu["kernel_module_version"] == "590.48.01"  # the files are still read
    assert smi.calls() == [first_call]  # no fallback: it would hang the same way


def test_timeout_must_be_positive(host, capsys):
    FakeSmi(host / "bin").write(query="a10.q.txt")
    code, result = run_module(base_args(host, timeout=0), capsys)
    assert code == 1
    assert result["msg"] == "timeout must be a positive number of seconds, got 0.0"


# --------------------------------------------------------------------------- finding nvidia-smi


def test_command_missing_is_absent_not_failed(host, capsys):
    gpu = run_ok(base_args(host), capsys)
    assert gpu["driver_present"] is False
    assert gpu["state"] == "absent"
    assert gpu["message"].startswith("nvidia-smi not found on PATH or in ")
    assert (gpu["gpus"], gpu["gpu_count"], gpu["driver_version"], gpu["nvidia_smi_path"]) == ([], 0, None, None)
    assert gpu["kernel_module_loaded"] is True  # still reported: a loaded module without tools is a finding


def test_configured_path_missing_is_absent(host, capsys):
    missing = str(host / "nowhere" / "nvidia-smi")
    gpu = run_ok(base_args(host, nvidia_smi_path=missing), capsys)
    assert (gpu["driver_present"], gpu["state"]) == (False, "absent")
    assert gpu["message"] == "%s does not exist or is not executable" % missing


def test_configured_path_is_used(host, capsys):
    other = host / "opt"
    other.mkdir()
    smi = FakeSmi(other).write(query="a10.q.txt")
    gpu = run_ok(base_args(host, nvidia_smi_path=smi.path), capsys)
    assert (gpu["nvidia_smi_path"], gpu["state"]) == (smi.path, "ok")


def test_usr_bin_fallback_when_not_on_path(host, capsys, monkeypatch):
    usr_bin = host / "usr-bin"
    usr_bin.mkdir()
    smi = FakeSmi(usr_bin).write(query="a10.q.txt")
    monkeypatch.setattr(nvidia_gpu_facts, "DEFAULT_NVIDIA_SMI_DIRS", [str(usr_bin)])
    gpu = run_ok(base_args(host), capsys)
    assert (gpu["nvidia_smi_path"], gpu["state"]) == (smi.path, "ok")


# --------------------------------------------------------------------------- broken drivers


@pytest.mark.parametrize("name, rc, state, message", [
    ("version-mismatch.txt", RC_VERSION_MISMATCH, "version_mismatch",
     "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 535.161"),
    ("no-devices.txt", RC_NO_DEVICES, "no_devices", "No devices were found"),
    ("no-driver.txt", RC_NO_DRIVER, "nvml_error",
     "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
     "Make sure that the latest NVIDIA driver is installed and running."),
    ("nvml-unknown-error.txt", RC_OTHER, "nvml_error", "Failed to initialize NVML: Unknown Error"),
])
@pytest.mark.parametrize("source", ["auto", "query", "csv"])
def test_broken_driver_states(host, capsys, name, rc, state, message, source):
    smi = FakeSmi(host / "bin").write(text=fixture_path(name), rc=rc)
    gpu = run_ok(base_args(host, source=source), capsys)
    assert gpu["driver_present"] is True
    assert (gpu["state"], gpu["message"]) == (state, message)
    assert (gpu["gpus"], gpu["gpu_count"], gpu["source"], gpu["driver_version"]) == ([], 0, None, None)
    assert len(smi.calls()) == 1  # no fallback after a recognised failure


def test_unrecognised_failure_is_nvml_error_with_the_output(host, capsys):
    weird = host / "weird.txt"
    weird.write_text("Something new went wrong\n")
    FakeSmi(host / "bin").write(text=str(weird), rc=3)
    gpu = run_ok(base_args(host), capsys)
    assert (gpu["state"], gpu["message"]) == ("nvml_error", "Something new went wrong")


def test_silent_failure_reports_the_exit_code(host, capsys):
    empty = host / "empty.txt"
    empty.write_text("")
    FakeSmi(host / "bin").write(text=str(empty), rc=15)
    gpu = run_ok(base_args(host), capsys)
    assert (gpu["state"], gpu["message"]) == ("nvml_error", "nvidia-smi exited with status 15 and printed nothing")


# --------------------------------------------------------------------------- kernel module, container


def test_kernel_module_not_loaded_and_no_version_file(host, capsys):
    (host / "modules").write_text("nouveau 2433024 0 - Live 0x0000000000000000\n")
    gpu = run_ok(base_args(host, module_version_path=str(host / "no-such-version")), capsys)
    assert (gpu["kernel_module_loaded"], gpu["kernel_module_version"]) == (False, None)


def test_kernel_module_unknown_when_proc_modules_unreadable(host, capsys):
    gpu = run_ok(base_args(host, proc_modules=str(host / "no-such-modules"),
                           module_version_path=str(host / "no-such-version")), capsys)
    assert gpu["kernel_module_loaded"] is None


def test_kernel_module_loaded_from_sysfs_when_proc_modules_unreadable(host, capsys):
    gpu = run_ok(base_args(host, proc_modules=str(host / "no-such-modules")), capsys)
    assert (gpu["kernel_module_loaded"], gpu["kernel_module_version"]) == (True, "590.48.01")


def test_in_container_from_marker_file_and_cgroup(host, capsys):
    (host / "dockerenv").write_text("")
    (host / "proc1-cgroup").write_text("12:devices:/docker/3f1c0d\n")
    gpu = run_ok(base_args(host), capsys)
    assert gpu["in_container"] is True
    assert gpu["in_container_hints"] == ["%s exists" % (host / "dockerenv"), "/proc/1/cgroup mentions docker"]


def test_in_container_from_systemd_detect_virt(host, capsys, monkeypatch):
    monkeypatch.setattr(nvidia_gpu_facts, "_detect_virt", lambda module: (0, "podman\n"))
    gpu = run_ok(base_args(host), capsys)
    assert (gpu["in_container"], gpu["in_container_hints"]) == (True, ["systemd-detect-virt -c: podman"])


def test_detect_virt_runs_systemd_detect_virt_c(tmp_path):
    log = tmp_path / "calls"
    fake = tmp_path / "systemd-detect-virt"
    fake.write_text('#!/bin/sh\necho "$*" >> %s\n[ "$1" = "-c" ] && echo docker && exit 0\nexit 2\n' % log)
    os.chmod(str(fake), 0o755)
    assert nvidia_gpu_facts._detect_virt(_StubModule(str(fake))) == (0, "docker\n")
    assert log.read_text() == "-c\n"
    assert nvidia_gpu_facts._detect_virt(_StubModule(None)) is None


def test_detect_virt_that_hangs_gives_no_hint(tmp_path):
    fake = tmp_path / "systemd-detect-virt"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    os.chmod(str(fake), 0o755)
    start = time.monotonic()
    assert nvidia_gpu_facts._detect_virt(_StubModule(str(fake), timeout=0.5)) is None
    assert time.monotonic() - start < 5


class _StubModule:
    """Just what _detect_virt uses of AnsibleModule."""

    def __init__(self, detect_virt_path, timeout=10):
        self.detect_virt_path = detect_virt_path
        self.params = {"timeout": timeout}

    def get_bin_path(self, name, required=False):
        return self.detect_virt_path if name == "systemd-detect-virt" else None


# --------------------------------------------------------------------------- which nvidia-smi


def test_the_nvidia_smi_first_on_path_wins_over_usr_bin(host, capsys, monkeypatch):
    """PATH is searched before the /usr/bin fallback: a driver on its own mount (/usr/local/nvidia/bin)
    and a stale /usr/bin/nvidia-smi must not pick the stale one."""
    fallback = host / "usr-bin"
    fallback.mkdir()
    FakeSmi(fallback).write(query="version-mismatch.txt", rc=RC_VERSION_MISMATCH)
    monkeypatch.setattr(nvidia_gpu_facts, "DEFAULT_NVIDIA_SMI_DIRS", [str(fallback)])
    FakeSmi(host / "bin").write(query="h100-80gb-hbm3.q.txt")
    gpu = run_ok(base_args(host), capsys)
    assert gpu["nvidia_smi_path"] == str(host / "bin" / "nvidia-smi")
    assert gpu["state"] == "ok"


def test_the_nvidia_smi_option_names_another_command(host, capsys):
    FakeSmi(host / "bin", name="nvidia-smi-580").write(query="h100-80gb-hbm3.q.txt")
    gpu = run_ok(base_args(host, nvidia_smi="nvidia-smi-580"), capsys)
    assert gpu["nvidia_smi_path"] == str(host / "bin" / "nvidia-smi-580")
    assert gpu["state"] == "ok"
