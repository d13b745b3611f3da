# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the health signals of each GPU from ``nvidia-smi -q -x``: pure functions, no I/O.

Standard library only: this file runs on the managed host (module and ``gpulab-gpu-health``).

The document is parsed once by ``nvidia_smi.xml_root``; the identity of each GPU (index, UUID, bus
id, name) comes from ``nvidia_smi.parse_xml_root``, so there is one XML reader for GPU identity in
the collection. What the driver prints, as recorded on an H100 with driver 580
(tests/fixtures/gpu-health/h100-healthy.xml):

* there is no index element: the index is the position of the ``<gpu id="<bus id>">`` element;
* no ``<gpu_reset_status>``, only ``<gpu_recovery_action>`` (None);
* temperatures relative to T.Limit (``gpu_temp_tlimit``, ``gpu_temp_slow_tlimit_threshold``), no
  absolute slowdown temperature (older drivers print ``gpu_temp_slow_threshold`` instead);
* link widths as ``16x``; counters as plain numbers; ``N/A`` where a field does not apply.

Only ``-q -x`` is read: ``nvidia-smi -q -d ...,ROW_REMAPPER`` is refused by driver 580 ("Failed to
parse --display/-d flags"), and the XML carries every section anyway.

Each value is kept as the driver's text (stripped), ``None`` when the element is absent; the
checks interpret it with :func:`number`, :func:`yes_no` and :func:`not_applicable`.
"""

from __future__ import annotations

import re

from ansible_collections.gpulab.provision.plugins.module_utils.nvidia_smi import parse_xml_root, xml_root

# Values that mean "this field does not apply to this GPU" (not a failure to read it).
# Driver 575 prints "Requested functionality has been deprecated" inside <gpu_reset_status>.
_NOT_APPLICABLE = frozenset(("n/a", "not supported", "[n/a]", "[not supported]", "none", "",
                             "requested functionality has been deprecated"))
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:x|C|W|MHz|MiB|us|%|bank\(s\))?\s*$")

# (signal name, path under <gpu>). One table, so a driver that moves a field is one edit here.
_PATHS = (
    ("persistence_mode", "persistence_mode"),
    ("ecc_current", "ecc_mode/current_ecc"),
    ("ecc_pending", "ecc_mode/pending_ecc"),
    ("dram_uncorrectable", "ecc_errors/volatile/dram_uncorrectable"),
    ("sram_uncorrectable_parity", "ecc_errors/volatile/sram_uncorrectable_parity"),
    ("sram_uncorrectable_secded", "ecc_errors/volatile/sram_uncorrectable_secded"),
    ("sram_uncorrectable", "ecc_errors/volatile/sram_uncorrectable"),  # drivers before the parity/secded split
    ("dram_correctable", "ecc_errors/volatile/dram_correctable"),
    ("sram_correctable", "ecc_errors/volatile/sram_correctable"),
    ("sram_threshold_exceeded", "ecc_errors/aggregate/sram_threshold_exceeded"),
    ("remapped_row_corr", "remapped_rows/remapped_row_corr"),
    ("remapped_row_unc", "remapped_rows/remapped_row_unc"),
    ("remapped_row_pending", "remapped_rows/remapped_row_pending"),
    ("remapped_row_failure", "remapped_rows/remapped_row_failure"),
    ("retired_sbe", "retired_pages/multiple_single_bit_retirement/retired_count"),
    ("retired_dbe", "retired_pages/double_bit_retirement/retired_count"),
    ("retired_pending_blacklist", "retired_pages/pending_blacklist"),
    ("retired_pending_retirement", "retired_pages/pending_retirement"),
    ("pcie_gen_current", "pci/pci_gpu_link_info/pcie_gen/current_link_gen"),
    ("pcie_gen_max", "pci/pci_gpu_link_info/pcie_gen/max_link_gen"),
    ("pcie_width_current", "pci/pci_gpu_link_info/link_widths/current_link_width"),
    ("pcie_width_max", "pci/pci_gpu_link_info/link_widths/max_link_width"),
    ("replay_counter", "pci/replay_counter"),
    ("replay_rollover_counter", "pci/replay_rollover_counter"),
    ("gpu_temp", "temperature/gpu_temp"),
    ("gpu_temp_slow_threshold", "temperature/gpu_temp_slow_threshold"),
    ("gpu_temp_tlimit", "temperature/gpu_temp_tlimit"),
    ("gpu_temp_slow_tlimit_threshold", "temperature/gpu_temp_slow_tlimit_threshold"),
    ("reset_required", "gpu_reset_status/reset_required"),
    ("drain_and_reset_recommended", "gpu_reset_status/drain_and_reset_recommended"),
    ("recovery_action", "gpu_recovery_action"),
    ("fabric_state", "fabric/state"),
    ("fabric_status", "fabric/status"),
    ("fabric_health", "fabric/health/summary"),
)

# <clocks_event_reasons> children (driver >= 535); older drivers print <clocks_throttle_reasons>
# with clocks_throttle_reason_* children. Both map to the short names below.
_CLOCK_PREFIXES = ("clocks_event_reason_", "clocks_throttle_reason_")
_CLOCK_SECTIONS = ("clocks_event_reasons", "clocks_throttle_reasons")


def _text(element, path):
    found = element.find(path)
    if found is None:
        return None
    return (found.text or "").strip()


def not_applicable(value):
    """True for the values the driver prints when a field does not apply (N/A, Not Supported, None)."""
    return value is not None and value.strip().lower() in _NOT_APPLICABLE


def number(value):
    """``16x`` -> 16, ``35 C`` -> 35, ``-2 C`` -> -2, ``0`` -> 0; None for anything else."""
    if value is None:
        return None
    match = _NUMBER.match(value)
    if not match:
        return None
    text = match.group(1)
    return float(text) if "." in text else int(text)


def yes_no(value):
    """``Yes``/``Enabled``/``Active`` -> True, ``No``/``Disabled``/``Not Active`` -> False, else None."""
    lowered = (value or "").strip().lower()
    if lowered in ("yes", "enabled", "active", "on"):
        return True
    if lowered in ("no", "disabled", "not active", "off"):
        return False
    return None


def _clock_events(element):
    for section_name in _CLOCK_SECTIONS:
        section = element.find(section_name)
        if section is None:
            continue
        events = {}
        for child in section:
            name = child.tag
            for prefix in _CLOCK_PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    break
            events[name] = (child.text or "").strip()
        return events
    return None


def read_document(text):
    """``(driver_version, attached_gpus, [gpu signals, ...])`` from ``nvidia-smi -q -x`` output.

    Each GPU is a dict: ``index``, ``uuid``, ``bus_id``, ``name`` and every signal of ``_PATHS`` (the
    driver's text, None when absent), plus ``clock_events`` (short reason name -> ``Active`` / ``Not
    Active``; None when the section is absent). Raises ``NvidiaSmiParseError`` for a text that is not
    such a document or whose ``<attached_gpus>`` disagrees with its ``<gpu>`` elements.
    """
    root = xml_root(text)
    summary = parse_xml_root(root)
    gpus = []
    for identity, element in zip(summary["gpus"], root.findall("gpu")):
        gpu = {
            "index": identity["index"],
            "uuid": identity["uuid"],
            "bus_id": identity["pci_bus_id"],
            "name": identity["name"],
        }
        for name, path in _PATHS:
            gpu[name] = _text(element, path)
        gpu["clock_events"] = _clock_events(element)
        gpus.append(gpu)
    return summary["driver_version"], len(gpus), gpus


def pci_key(bus_id):
    """``00000000:1B:00.0`` (nvidia-smi) and ``0000:1b:00`` (the kernel log's ``PCI:0000:1b:00``) ->
    the same key ``(domain, bus, device)`` as integers; None when the text is not a PCI address."""
    match = re.match(r"^\s*(?:PCI:)?([0-9A-Fa-f]{1,8}):([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2})(?:\.[0-9A-Fa-f])?\s*$",
                     bus_id or "")
    if not match:
        return None
    return tuple(int(part, 16) for part in match.groups())
