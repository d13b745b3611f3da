# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_health_xml: what the recorded H100 / driver 580 report says, read as the driver prints it."""

from __future__ import annotations

import os

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xml import (
    not_applicable,
    number,
    read_document,
    yes_no,
)
from ansible_collections.gpulab.provision.plugins.module_utils.nvidia_smi import NvidiaSmiParseError

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu-health"))
SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "..", "shared", "gpu-host"))


def fixture(name):
    with open(os.path.join(FIXTURES, name), "r", encoding="utf-8") as handle:
        return handle.read()


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="the shared recordings are not next to this checkout")
def test_the_healthy_fixture_is_the_recording():
    with open(os.path.join(SHARED, "nvidia-smi-q.xml"), "r", encoding="utf-8") as handle:
        assert handle.read() == fixture("h100-healthy.xml")


def test_the_h100_report_as_driver_580_prints_it():
    driver, count, (gpu,) = read_document(fixture("h100-healthy.xml"))
    assert (driver, count) == ("580.159.04", 1)
    assert "<index>" not in fixture("h100-healthy.xml")  # the index is the position of <gpu id=...>
    assert (gpu["index"], gpu["bus_id"], gpu["uuid"]) == (0, "00000000:00:06.0", "GPU-310b45f2-6f17-7b08-158e-2ec04b61f379")
    assert gpu["reset_required"] is None and gpu["recovery_action"] == "None"
    assert (gpu["pcie_width_current"], gpu["pcie_width_max"]) == ("16x", "16x")
    assert gpu["replay_counter"] == "1"
    assert (gpu["gpu_temp_tlimit"], gpu["gpu_temp_slow_tlimit_threshold"], gpu["gpu_temp_slow_threshold"]) == \
        ("52 C", "-2 C", None)
    assert gpu["clock_events"]["gpu_idle"] == "Active" and gpu["clock_events"]["hw_slowdown"] == "Not Active"
    assert gpu["fabric_state"] == "N/A"
    assert gpu["retired_sbe"] == "N/A" and gpu["remapped_row_pending"] == "No"


@pytest.mark.parametrize("text, value", [("16x", 16), ("35 C", 35), ("-2 C", -2), ("0", 0), ("71.46 W", 71.46),
                                         ("2560 bank(s)", 2560), ("N/A", None), ("Unknown Error", None), (None, None)])
def test_number(text, value):
    assert number(text) == value


def test_yes_no_and_not_applicable():
    assert [yes_no(v) for v in ("Yes", "Enabled", "Active", "No", "Not Active", "N/A")] == [True] * 3 + [False] * 2 + [None]
    assert not_applicable("Requested functionality has been deprecated") and not_applicable("N/A")
    assert not not_applicable("Unknown Error") and not not_applicable(None)


def test_a_report_with_a_gpu_missing_from_attached_gpus_is_refused():
    with pytest.raises(NvidiaSmiParseError):
        read_document(fixture("h100x8-healthy.xml").replace("<attached_gpus>8<", "<attached_gpus>9<"))
