# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_health_xid: Xid lines in the kernel log's formats, PCI matching, this boot only, the window, the policy."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xid import judge, parse_xids
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xml import pci_key

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu-health"))
POLICY = {"79": {"severity": "critical", "action": "reboot"}, "13": {"severity": "ignore", "action": "none"},
          "48": {"severity": "critical", "action": "reset"}, "default": {"severity": "warn", "action": "none"}}


def fixture(name):
    with open(os.path.join(FIXTURES, name), "r", encoding="utf-8") as handle:
        return handle.read()


def test_the_kernel_log_pci_address_matches_nvidia_smis_bus_id():
    assert pci_key("PCI:0000:1b:00") == pci_key("00000000:1B:00.0") == (0, 0x1B, 0)
    assert pci_key("0000:1b:00") != pci_key("00000000:1C:00.0")
    assert pci_key("GPU-1234") is None


@pytest.mark.parametrize("line", [
    "[ 6102.441038] NVRM: Xid (PCI:0000:1b:00): 79, pid=2412, name=python3, GPU has fallen off the bus.",
    "[ 6102.441038] gpu07 kernel: NVRM: Xid (PCI:0000:1b:00): 79, pid=2412, name=python3, GPU has fallen off the bus.",
    "Dec  4 09:42:53 gpu07 kernel: [ 6102.441038] NVRM: Xid (PCI:0000:1b:00): 79, pid=2412, name=python3, GPU has fallen "
    "off the bus.",
    "2026-12-04T09:42:53.123456+00:00 gpu07 kernel: NVRM: Xid (PCI:0000:1b:00): 79, pid='<unknown>', name=<unknown>, "
    "GPU has fallen off the bus.",
])
def test_xid_lines_in_dmesg_journal_and_syslog_formats(line):
    (event,) = parse_xids(line, uptime_s=7000.0, now=time.time())
    assert (event["code"], event["pci"], event["key"]) == (79, "0000:1b:00", (0, 0x1B, 0))
    assert "fallen off the bus" in event["message"]


def test_a_kern_log_counts_only_the_current_boot():
    events = parse_xids(fixture("kern-xid79.log"), uptime_s=6200.0, now=time.time(), whole_file=True)
    assert [e["code"] for e in events] == [79]
    # The same text read as a current-boot source (journal -b 0, dmesg) keeps both.
    assert [e["code"] for e in parse_xids(fixture("kern-xid79.log"), uptime_s=9999.0)] == [48, 79]


def test_a_file_without_a_boot_banner_drops_lines_older_than_the_boot():
    now = time.mktime((2026, 12, 4, 12, 0, 0, 0, 0, -1))
    text = ("Dec  3 22:14:02 gpu07 kernel: NVRM: Xid (PCI:0000:00:06): 48, pid=1, name=x, DBE\n"
            "Dec  4 11:00:00 gpu07 kernel: NVRM: Xid (PCI:0000:00:06): 79, pid=1, name=x, off the bus\n")
    events = parse_xids(text, uptime_s=7200.0, now=now, whole_file=True)
    assert [(e["code"], e["age_s"]) for e in events] == [(79, 3600.0)]


def test_the_window_keeps_only_recent_events():
    text = ("[  100.000000] NVRM: Xid (PCI:0000:00:06): 48, pid=1, name=x, DBE\n"
            "[ 7000.000000] NVRM: Xid (PCI:0000:00:06): 79, pid=1, name=x, off the bus\n")
    assert [e["code"] for e in parse_xids(text, window_s=3600, uptime_s=7200.0)] == [79]
    assert [e["code"] for e in parse_xids(text, window_s=None, uptime_s=7200.0)] == [48, 79]


def test_lines_that_only_look_like_xids_are_skipped():
    text = "[ 1.0] NVRM: Xid handling initialised\n[ 2.0] something NVRM: Xid (PCI:zz): 79, x\n"
    assert parse_xids(text, uptime_s=10.0) == []


def test_judge_takes_the_worst_code_and_counts_each():
    events = parse_xids(fixture("dmesg-xid13.txt") + "[ 3.0] NVRM: Xid (PCI:0000:00:06): 48, pid=1, name=x, DBE\n",
                        uptime_s=9999.0)
    severity, action, observed, detail = judge(events, POLICY)
    assert (severity, action, observed) == ("critical", "reset", "13 x1, 31 x1, 48 x1")
    assert "31 x1 (warn)" in detail  # 31 is not in this table: the default entry


def test_judge_with_only_ignored_codes_passes():
    assert judge(parse_xids(fixture("dmesg-xid13.txt").splitlines()[3], uptime_s=9999.0), POLICY)[:2] == ("pass", "none")


def test_a_10000_line_log_is_read_in_well_under_a_second():
    noise = "[ %d.000000] usb 1-1: new high-speed USB device number %d using xhci_hcd\n"
    text = "".join(noise % (n, n) for n in range(9990)) + fixture("dmesg-xid48-remap.txt")
    started = time.perf_counter()
    events = parse_xids(text, uptime_s=99999.0)
    assert len(events) == 3 and time.perf_counter() - started < 0.5
