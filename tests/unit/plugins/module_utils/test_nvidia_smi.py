# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nvidia-smi parser against the recorded outputs in tests/fixtures/nvidia-smi/.

Where each fixture comes from is in tests/fixtures/nvidia-smi/README.md. Values asserted here are
read off the fixtures by eye, not produced by the parser.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import nvidia_smi
from ansible_collections.gpulab.provision.plugins.module_utils.nvidia_smi import (
    QUERY_FIELDS,
    QUERY_GPU_ARGS,
    NvidiaSmiParseError,
    classify_failure,
    container_hints,
    csv_field_name,
    csv_records,
    kernel_module_is_open,
    nvidia_module_loaded,
    output_text,
    parse_banner,
    parse_csv,
    parse_query,
    parse_xml,
)

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "nvidia-smi"))


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def gpu(index, name, uuid, memory, persistence, mig, ecc, bus):
    return {
        "index": index,
        "name": name,
        "uuid": uuid,
        "memory_total_mib": memory,
        "persistence_mode": persistence,
        "mig_mode": mig,
        "ecc_mode": ecc,
        "pci_bus_id": bus,
    }


MASKED_UUID = "GPU-00000000-0000-0000-0000-000000000000"  # the capture tool masks UUIDs this way
H100 = gpu(0, "NVIDIA H100 80GB HBM3", MASKED_UUID, 81559, True, "Disabled", "Enabled", "00000000:00:09.0")
H100_MIG = dict(H100, mig_mode="Enabled")
A100_X4 = [
    gpu(0, "NVIDIA A100-SXM4-80GB", "GPU-31515c3d-1414-7c2c-004a-f86a898946ac", 81920, True, "Disabled", "Enabled",
        "00000000:68:00.0"),
    gpu(1, "NVIDIA A100-SXM4-80GB", "GPU-72d87681-01db-370e-567d-41afcf20fad0", 81920, True, "Disabled", "Enabled",
        "00000000:9E:00.0"),
    gpu(2, "NVIDIA A100-SXM4-80GB", "GPU-62989189-9e1e-ac75-4676-114f14998542", 81920, True, "Disabled", "Enabled",
        "00000000:C2:00.0"),
    gpu(3, "NVIDIA A100-SXM4-80GB", "GPU-011b2cfe-2b8e-1cb0-19e1-1b764e854dfc", 81920, True, "Disabled", "Enabled",
        "00000000:D4:00.0"),
]
A10 = gpu(0, "NVIDIA A10", "GPU-51ae0086-e1ac-4a20-f062-9caa44e4df6d", 23028, True, "N/A", "Enabled",
          "00000000:06:00.0")
RTX_4080_SUPER = gpu(0, "NVIDIA GeForce RTX 4080 SUPER", MASKED_UUID, 16376, False, "N/A", "N/A", "00000000:01:00.0")
# Recorded on a real host by shared/gpu-host/run.sh (2026-11-27): H100 80GB HBM3, driver 580.159.04
# (open kernel module), CUDA 13.0, Ubuntu 24.04 in a Firecracker VM. UUIDs are not masked there.
H100_580 = gpu(0, "NVIDIA H100 80GB HBM3", "GPU-310b45f2-6f17-7b08-158e-2ec04b61f379", 81559, True, "Disabled", "Enabled",
               "00000000:00:06.0")

QUERY_CASES = {
    "h100-80gb-hbm3.q.txt": ("590.48.01", "13.1", [H100]),
    "h100-80gb-hbm3-mig.q.txt": ("590.48.01", "13.1", [H100_MIG]),
    "a100-sxm4-80gb-x4.q.txt": ("555.42.02", "12.5", A100_X4),
    "a10.q.txt": ("550.127.05", "12.4", [A10]),
    "rtx-4080-super.q.txt": ("595.71.05", "13.2", [RTX_4080_SUPER]),
    "h100-80gb-hbm3-580-open.q.txt": ("580.159.04", "13.0", [H100_580]),
}

XML_CASES = {
    "h100-80gb-hbm3-580-open.q.xml": ("580.159.04", "13.0", [H100_580]),
}

CSV_CASES = {
    "h100-80gb-hbm3.query-gpu.csv": ("590.48.01", [H100]),
    "h100-80gb-hbm3-mig.query-gpu.csv": ("590.48.01", [H100_MIG]),
    "a100-sxm4-80gb-x4.query-gpu.csv": ("555.42.02", A100_X4),
    # recorded with a header and units, and another field list (no persistence or ECC mode, plus
    # compute_cap): columns are read by name, the ones not asked for are None / N/A
    "h100-80gb-hbm3-580-open.query-gpu-header.csv": ("580.159.04", [
        dict(H100_580, persistence_mode=None, ecc_mode="N/A")]),
}

# Fixtures read by tests of their own below (not a GPU list in one of the formats above).
OTHER_FIXTURES = {
    "h100-80gb-hbm3-580-open.health.csv",
    "h100-80gb-hbm3-580-open.proc-driver-version.txt",
}


def banner_gpu(index, name, memory, persistence, mig, bus):
    """A GPU as the table shows it: no UUID, no ECC mode."""
    return gpu(index, name, None, memory, persistence, mig, "N/A", bus)


V100_BUSES = ["00000000:00:04.0", "00000000:00:05.0", "00000000:00:06.0", "00000000:00:07.0",
              "00000000:00:08.0", "00000000:00:09.0", "00000000:00:0A.0", "00000000:00:0B.0"]
P100_BUSES = ["00000000:04:00.0", "00000000:05:00.0", "00000000:09:00.0", "00000000:0A:00.0",
              "00000000:85:00.0", "00000000:86:00.0", "00000000:89:00.0", "00000000:8A:00.0"]

BANNER_CASES = {
    "h100-80gb-hbm3.banner.txt": ("590.48.01", "590.48.01", "13.1", [
        banner_gpu(0, "NVIDIA H100 80GB HBM3", 81559, True, "Disabled", "00000000:00:09.0")]),
    "h100-80gb-hbm3-mig.banner.txt": ("590.48.01", "590.48.01", "13.1", [
        banner_gpu(0, "NVIDIA H100 80GB HBM3", 81559, True, "Enabled", "00000000:00:09.0")]),
    "a100-sxm4-80gb-x4.banner.txt": ("555.42.02", "555.42.02", "12.5", [
        banner_gpu(g["index"], g["name"], 81920, True, "Disabled", g["pci_bus_id"]) for g in A100_X4]),
    "v100-sxm2-16gb-x8.banner.txt": ("550.127.05", "550.127.05", "12.4", [
        banner_gpu(i, "Tesla V100-SXM2-16GB", 16384, True, "N/A", bus) for i, bus in enumerate(V100_BUSES)]),
    "a10.banner.txt": ("550.127.05", "550.127.05", "12.4", [
        banner_gpu(0, "NVIDIA A10", 23028, True, "N/A", "00000000:06:00.0")]),
    # the table truncates long names; -q has the full "NVIDIA GeForce RTX 4080 SUPER"
    "rtx-4080-super.banner.txt": ("595.71.05", "595.71.05", "13.2", [
        banner_gpu(0, "NVIDIA GeForce RTX 4080 ...", 16376, False, "N/A", "00000000:01:00.0")]),
    # R440 layout: narrower columns, two rows per GPU, no MIG column
    "p100-sxm2-x8-440.banner.txt": ("440.33.01", "440.33.01", "10.2", [
        banner_gpu(i, "Tesla P100-SXM2...", 16280, True, "N/A", bus) for i, bus in enumerate(P100_BUSES)]),
    "h100-80gb-hbm3-580-open.banner.txt": ("580.159.04", "580.159.04", "13.0", [
        banner_gpu(0, "NVIDIA H100 80GB HBM3", 81559, True, "Disabled", "00000000:00:06.0")]),
}

FAILURE_CASES = {
    "version-mismatch.txt": (
        "version_mismatch",
        "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 535.161",
    ),
    "no-devices.txt": ("no_devices", "No devices were found"),
    "no-driver.txt": (
        "nvml_error",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running.",
    ),
    "nvml-unknown-error.txt": ("nvml_error", "Failed to initialize NVML: Unknown Error"),
}


# --------------------------------------------------------------------------- every fixture is used


def test_every_fixture_has_a_case_and_a_readme_entry():
    cases = set(QUERY_CASES) | set(XML_CASES) | set(CSV_CASES) | set(BANNER_CASES) | set(FAILURE_CASES) | OTHER_FIXTURES
    files = set(os.listdir(FIXTURES)) - {"README.md"}
    assert files == cases
    readme = fixture("README.md")
    for name in sorted(files):
        assert "`%s`" % name in readme, name


# --------------------------------------------------------------------------- nvidia-smi -q


@pytest.mark.parametrize("name", sorted(QUERY_CASES))
def test_parse_query_fixture(name):
    driver, cuda, gpus = QUERY_CASES[name]
    parsed = parse_query(fixture(name))
    assert parsed == {"driver_version": driver, "cuda_version": cuda, "gpus": gpus}


def test_parse_query_mig_reads_the_gpu_memory_not_the_mig_instances():
    # the MIG report nests "Shared FB Memory Usage / Total : 40448 MiB" under each "MIG Device"
    text = fixture("h100-80gb-hbm3-mig.q.txt")
    assert "            Total                                      : 40448 MiB" in text
    assert parse_query(text)["gpus"][0]["memory_total_mib"] == 81559


def test_parse_query_multi_gpu_index_is_report_order_not_minor_number():
    text = fixture("a100-sxm4-80gb-x4.q.txt")
    assert "Minor Number                          : 3" in text  # the first GPU's minor number
    assert [g["index"] for g in parse_query(text)["gpus"]] == [0, 1, 2, 3]


def test_parse_query_rejects_a_report_with_missing_gpu_sections():
    text = fixture("a100-sxm4-80gb-x4.q.txt")
    truncated = text[: text.index("GPU 00000000:D4:00.0")]
    with pytest.raises(NvidiaSmiParseError, match="says 4 but the report has 3"):
        parse_query(truncated)


@pytest.mark.parametrize("text", ["", "No devices were found\n", fixture("h100-80gb-hbm3.banner.txt")])
def test_parse_query_rejects_other_text(text):
    with pytest.raises(NvidiaSmiParseError, match="NVSMI LOG"):
        parse_query(text)


def test_parse_query_cuda_not_found_is_none():
    text = fixture("a10.q.txt").replace(
        "CUDA Version                              : 12.4", "CUDA Version                              : Not Found"
    )
    assert parse_query(text)["cuda_version"] is None


def test_parse_query_without_cuda_line():
    # drivers before R410 printed no CUDA Version line; the module then reads the table header
    text = fixture("a10.q.txt").replace("CUDA Version                              : 12.4\n", "")
    parsed = parse_query(text)
    assert parsed["cuda_version"] is None
    assert parsed["driver_version"] == "550.127.05"


def test_parse_query_bad_memory_value():
    text = fixture("a10.q.txt").replace("Total                             : 23028 MiB", "Total : lots", 1)
    with pytest.raises(NvidiaSmiParseError, match="memory size"):
        parse_query(text)


# --------------------------------------------------------------------------- --query-gpu CSV


def test_query_gpu_args():
    assert QUERY_GPU_ARGS == (
        "--query-gpu=index,name,uuid,memory.total,persistence_mode,mig.mode.current,ecc.mode.current,"
        "pci.bus_id,driver_version",
        "--format=csv,noheader,nounits",
    )
    assert len(QUERY_FIELDS) == 9


@pytest.mark.parametrize("name", sorted(CSV_CASES))
def test_parse_csv_fixture(name):
    driver, gpus = CSV_CASES[name]
    assert parse_csv(fixture(name)) == {"driver_version": driver, "cuda_version": None, "gpus": gpus}


@pytest.mark.parametrize("stem", ["h100-80gb-hbm3", "h100-80gb-hbm3-mig", "a100-sxm4-80gb-x4"])
def test_derived_csv_agrees_with_the_recorded_query(stem):
    assert parse_csv(fixture(stem + ".query-gpu.csv"))["gpus"] == parse_query(fixture(stem + ".q.txt"))["gpus"]


def test_parse_csv_tolerates_header_units_and_not_available():
    text = (
        "index, name, uuid, memory.total [MiB], persistence_mode, mig.mode.current, ecc.mode.current, "
        "pci.bus_id, driver_version\n"
        "0, NVIDIA GeForce RTX 4080 SUPER, GPU-00000000-0000-0000-0000-000000000000, 16376 MiB, Disabled, "
        "[N/A], [N/A], 00000000:01:00.0, 595.71.05\n"
    )
    assert parse_csv(text) == {
        "driver_version": "595.71.05",
        "cuda_version": None,
        "gpus": [dict(RTX_4080_SUPER)],
    }


@pytest.mark.parametrize("text, match", [
    ("", "no rows"),
    ("0, NVIDIA A10, GPU-51ae0086-e1ac-4a20-f062-9caa44e4df6d\n", "expected 9 --query-gpu columns, got 3"),
    ("x, a, b, 1, Enabled, N/A, N/A, 00000000:06:00.0, 550.127.05\n", "unexpected GPU index"),
    ("0, a, b, many, Enabled, N/A, N/A, 00000000:06:00.0, 550.127.05\n", "memory size"),
])
def test_parse_csv_rejects(text, match):
    with pytest.raises(NvidiaSmiParseError, match=match):
        parse_csv(text)


def test_parse_csv_header_columns_in_any_order():
    text = ("pci.bus_id, driver_version, index, memory.total [MiB], uuid\n"
            "00000000:00:06.0, 580.159.04, 0, 81559 MiB, GPU-310b45f2-6f17-7b08-158e-2ec04b61f379\n")
    parsed = parse_csv(text)
    assert parsed["driver_version"] == "580.159.04"
    assert parsed["gpus"] == [gpu(0, None, "GPU-310b45f2-6f17-7b08-158e-2ec04b61f379", 81559, None, "N/A", "N/A",
                                  "00000000:00:06.0")]


def test_header_csv_of_the_580_host_agrees_with_its_query_report():
    from_csv = parse_csv(fixture("h100-80gb-hbm3-580-open.query-gpu-header.csv"))["gpus"][0]
    from_query = parse_query(fixture("h100-80gb-hbm3-580-open.q.txt"))["gpus"][0]
    for key in ("index", "name", "uuid", "memory_total_mib", "mig_mode", "pci_bus_id"):
        assert from_csv[key] == from_query[key], key


def test_csv_field_name_drops_units_and_renames_throttle_to_event():
    assert csv_field_name("memory.total [MiB]") == "memory.total"
    assert csv_field_name(" power.draw [W] ") == "power.draw"
    assert csv_field_name("clocks_throttle_reasons.active") == "clocks_event_reasons.active"
    assert csv_field_name("clocks_throttle_reasons.hw_slowdown") == "clocks_event_reasons.hw_slowdown"
    assert csv_field_name("clocks_event_reasons.active") == "clocks_event_reasons.active"


def test_health_csv_recorded_on_580_reads_the_renamed_clock_reasons_field():
    # asked for clocks_throttle_reasons.active, driver 580 printed the header clocks_event_reasons.active
    text = fixture("h100-80gb-hbm3-580-open.health.csv")
    assert "clocks_event_reasons.active" in text and "clocks_throttle_reasons" not in text
    records = csv_records(text)
    assert len(records) == 1
    record = records[0]
    assert record["clocks_event_reasons.active"] == "0x0000000000000001"
    assert (record["pcie.link.gen.current"], record["pcie.link.gen.max"]) == ("5", "5")
    assert (record["pcie.link.width.current"], record["pcie.link.width.max"]) == ("16", "16")
    assert record["ecc.mode.current"] == "Enabled"
    assert record["ecc.errors.uncorrected.volatile.total"] == "0"
    assert record["retired_pages.pending"] is None  # [N/A]
    assert (record["power.draw"], record["power.limit"]) == ("111.96 W", "700.00 W")
    # an older driver answers with the old header: same key
    older = csv_records(text.replace("clocks_event_reasons.active", "clocks_throttle_reasons.active"))
    assert older == records


def test_csv_records_without_header_needs_a_field_list():
    with pytest.raises(NvidiaSmiParseError, match="no header line"):
        csv_records("0, NVIDIA A10\n")
    assert csv_records("0, NVIDIA A10\n", ["index", "name"]) == [{"index": "0", "name": "NVIDIA A10"}]


# --------------------------------------------------------------------------- nvidia-smi -q -x


@pytest.mark.parametrize("name", sorted(XML_CASES))
def test_parse_xml_fixture(name):
    driver, cuda, gpus = XML_CASES[name]
    assert parse_xml(fixture(name)) == {"driver_version": driver, "cuda_version": cuda, "gpus": gpus}


def test_xml_and_text_report_of_the_580_host_agree():
    assert parse_xml(fixture("h100-80gb-hbm3-580-open.q.xml")) == parse_query(fixture("h100-80gb-hbm3-580-open.q.txt"))


def test_580_report_names_clock_event_reasons_not_throttle_reasons():
    # driver 580 renamed the section in both report forms; the GPU keys above do not depend on it
    assert "Clocks Event Reasons" in fixture("h100-80gb-hbm3-580-open.q.txt")
    assert "<clocks_event_reasons>" in fixture("h100-80gb-hbm3-580-open.q.xml")
    assert "hrottle" not in fixture("h100-80gb-hbm3-580-open.q.txt")


def test_parse_xml_rejects_a_report_with_missing_gpu_elements():
    text = fixture("h100-80gb-hbm3-580-open.q.xml").replace(
        "<attached_gpus>1</attached_gpus>", "<attached_gpus>2</attached_gpus>")
    with pytest.raises(NvidiaSmiParseError, match="says 2 but the report has 1"):
        parse_xml(text)


@pytest.mark.parametrize("text, match", [
    ("", "not an 'nvidia-smi -q -x' report"),
    (fixture("h100-80gb-hbm3-580-open.q.txt"), "not an 'nvidia-smi -q -x' report"),
    ("<?xml version='1.0'?><other/>", "root element 'other'"),
])
def test_parse_xml_rejects_other_text(text, match):
    with pytest.raises(NvidiaSmiParseError, match=match):
        parse_xml(text)


# --------------------------------------------------------------------------- plain nvidia-smi


@pytest.mark.parametrize("name", sorted(BANNER_CASES))
def test_parse_banner_fixture(name):
    smi, driver, cuda, gpus = BANNER_CASES[name]
    assert parse_banner(fixture(name)) == {
        "nvidia_smi_version": smi,
        "driver_version": driver,
        "cuda_version": cuda,
        "gpus": gpus,
    }


@pytest.mark.parametrize("stem", ["h100-80gb-hbm3", "h100-80gb-hbm3-mig", "a100-sxm4-80gb-x4", "a10", "rtx-4080-super",
                                  "h100-80gb-hbm3-580-open"])
def test_banner_and_query_of_one_machine_agree(stem):
    banner = parse_banner(fixture(stem + ".banner.txt"))
    query = parse_query(fixture(stem + ".q.txt"))
    assert (banner["driver_version"], banner["cuda_version"]) == (query["driver_version"], query["cuda_version"])
    for from_banner, from_query in zip(banner["gpus"], query["gpus"]):
        for key in ("index", "memory_total_mib", "persistence_mode", "mig_mode", "pci_bus_id"):
            assert from_banner[key] == from_query[key], key
    assert len(banner["gpus"]) == len(query["gpus"])


def test_parse_banner_cuda_not_available():
    text = fixture("a10.banner.txt").replace("CUDA Version: 12.4  ", "CUDA Version: N/A   ")
    assert parse_banner(text)["cuda_version"] is None


@pytest.mark.parametrize("name", ["version-mismatch.txt", "h100-80gb-hbm3.q.txt"])
def test_parse_banner_rejects_other_text(name):
    with pytest.raises(NvidiaSmiParseError, match="Driver Version"):
        parse_banner(fixture(name))


def test_parse_banner_stops_at_the_mig_device_table():
    # the MIG devices rows ("|  0    2   0   0  | ...") must not be read as GPUs
    assert len(parse_banner(fixture("h100-80gb-hbm3-mig.banner.txt"))["gpus"]) == 1


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("name", sorted(FAILURE_CASES))
def test_classify_failure_fixture(name):
    assert classify_failure(fixture(name)) == FAILURE_CASES[name]


@pytest.mark.parametrize("name", sorted(QUERY_CASES) + sorted(XML_CASES) + sorted(CSV_CASES) + sorted(BANNER_CASES))
def test_classify_failure_ignores_good_output(name):
    assert classify_failure(fixture(name)) is None


def test_classify_failure_empty():
    assert classify_failure("") is None
    assert classify_failure("   \n") is None


def test_classify_failure_keeps_the_message_verbatim_from_stderr():
    text = output_text("", fixture("version-mismatch.txt"))
    assert classify_failure(text) == FAILURE_CASES["version-mismatch.txt"]


def test_output_text_joins_streams():
    assert output_text("a\n", "b\n") == "a\nb"
    assert output_text("a\n", "") == "a"
    assert output_text(None, None) == ""


def test_states():
    assert nvidia_smi.STATES == ("ok", "absent", "no_devices", "version_mismatch", "nvml_error", "timed_out")


# --------------------------------------------------------------------------- host facts


def test_nvidia_module_loaded():
    # /proc/modules lines are "<name> <size> <refcount> <deps> <state> <address>"
    loaded = (
        "nvidia_uvm 1531904 0 - Live 0x0000000000000000 (POE)\n"
        "nvidia 56729600 2 nvidia_uvm,nvidia_modeset, Live 0x0000000000000000 (POE)\n"
    )
    assert nvidia_module_loaded(loaded) is True
    assert nvidia_module_loaded("nvidia_drm 90112 0 - Live 0x0000000000000000\n") is False
    assert nvidia_module_loaded("nouveau 2433024 0 - Live 0x0000000000000000\n") is False
    assert nvidia_module_loaded("") is False
    assert nvidia_module_loaded(None) is False


def test_kernel_module_is_open_from_the_recorded_580_host():
    assert kernel_module_is_open(fixture("h100-80gb-hbm3-580-open.proc-driver-version.txt")) is True


def test_kernel_module_is_open_false_for_the_proprietary_module():
    # the proprietary module's line as published in DIAMBRA Arena's installation docs
    assert kernel_module_is_open(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  440.95.01  Thu May 28 07:03:08 UTC 2020\n"
        "GCC version:  gcc version 7.5.0 (Ubuntu 7.5.0-3ubuntu1~18.04) \n") is False


@pytest.mark.parametrize("text", [None, "", "GCC version:  gcc version 15.3.0 (GCC)\n"])
def test_kernel_module_is_open_unknown(text):
    assert kernel_module_is_open(text) is None


def test_container_hints():
    assert container_hints() == []
    assert container_hints(["/.dockerenv"]) == ["/.dockerenv exists"]
    assert container_hints([], "0::/\n") == []
    assert container_hints([], "12:devices:/docker/3f1c\n") == ["/proc/1/cgroup mentions docker"]
    assert container_hints([], "0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-1.scope\n") == [
        "/proc/1/cgroup mentions kubepods",
        "/proc/1/cgroup mentions containerd",
    ]
    assert container_hints([], None, (0, "podman\n")) == ["systemd-detect-virt -c: podman"]
    assert container_hints([], None, (1, "none\n")) == []
    assert container_hints(["/run/.containerenv"], "0::/\n", (0, "podman\n")) == [
        "/run/.containerenv exists",
        "systemd-detect-virt -c: podman",
    ]
