# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse what ``nvidia-smi`` prints: pure functions over text, no I/O.

Standard library only: this file runs on the managed host inside the ``nvidia_gpu_facts`` module.

Four output formats are understood, each tested against recorded outputs under
``tests/fixtures/nvidia-smi/``:

* ``nvidia-smi -q`` (:func:`parse_query`): the indented ``Key : value`` report. It carries every
  field we need (driver and CUDA version, name, UUID, memory, persistence, MIG, ECC, PCI bus id)
  and is what people paste into bug reports, so it is the primary source.
* ``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits`` (:func:`parse_csv`):
  machine-readable, but it has no CUDA version. With a header line (``--format=csv``) columns are
  read by name, in any order and any subset (:func:`csv_records`); driver 580 renamed
  ``clocks_throttle_reasons.*`` to ``clocks_event_reasons.*`` and both names are accepted.
* ``nvidia-smi -q -x`` (:func:`parse_xml`): the same report as XML (``nvsmi_device_v*.dtd``), the
  form least likely to change its layout between drivers.
* plain ``nvidia-smi`` (:func:`parse_banner`): the table. Its header carries the CUDA version the
  driver supports; its rows have truncated names and no UUID, so it is only a fallback.

Failures (no driver, no devices, driver/library mismatch, other NVML errors) are recognised from
the message nvidia-smi prints, not from its exit code (:func:`classify_failure`).
"""

from __future__ import annotations

import csv
import re
from xml.etree import ElementTree

STATE_OK = "ok"
STATE_ABSENT = "absent"
STATE_NO_DEVICES = "no_devices"
STATE_VERSION_MISMATCH = "version_mismatch"
STATE_NVML_ERROR = "nvml_error"
STATE_TIMED_OUT = "timed_out"
STATES = (STATE_OK, STATE_ABSENT, STATE_NO_DEVICES, STATE_VERSION_MISMATCH, STATE_NVML_ERROR, STATE_TIMED_OUT)

# The --query-gpu field list, in the column order parse_csv() expects.
QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "persistence_mode",
    "mig.mode.current",
    "ecc.mode.current",
    "pci.bus_id",
    "driver_version",
)
QUERY_GPU_ARGS = ("--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits")

# Values nvidia-smi prints when it has nothing to report. --query-gpu wraps them in brackets.
_NOT_AVAILABLE = frozenset(("", "n/a", "[n/a]", "not found", "unknown error", "[unknown error]",
                            "not supported", "[not supported]", "insufficient permissions",
                            "[insufficient permissions]"))

# Failure messages, checked in this order (first match wins).
_FAILURES = (
    (STATE_VERSION_MISMATCH, re.compile(r"Driver/library version mismatch", re.IGNORECASE)),
    (STATE_NO_DEVICES, re.compile(r"^\s*No devices were found", re.IGNORECASE | re.MULTILINE)),
    (STATE_NVML_ERROR, re.compile(
        r"Failed to initialize NVML"
        r"|NVIDIA-SMI has failed"
        r"|couldn.t communicate with the NVIDIA driver"
        r"|Unable to determine the device handle"
        r"|GPU is lost"
        r"|NVML Shared Library Not Found"
        r"|libnvidia-ml\.so",
        re.IGNORECASE)),
)

_Q_HEADER = "==============NVSMI LOG=============="
# "GPU 00000000:00:09.0" starts one GPU's block in -q output.
_Q_GPU = re.compile(r"^GPU\s+([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f])\s*$")
# "    Key    : value". The separator is the first colon followed by a space or the line end, so
# values may contain colons (bus ids, timestamps) and keys never do.
_Q_KEY_VALUE = re.compile(r"^(?P<indent> *)(?P<key>[^:\s][^:]*?)\s*:(?: (?P<value>.*))?$")
_Q_SECTION = re.compile(r"^(?P<indent> *)(?P<key>\S.*?)\s*$")

_BANNER_HEADER = re.compile(
    r"NVIDIA-SMI\s+(?P<smi>\S+)\s+Driver Version:\s*(?P<driver>\S+)"
    r"(?:\s+CUDA Version:\s*(?P<cuda>[^|\s]+))?"
)
_BANNER_ROW1_NAME = re.compile(r"^\s*(?P<index>\d+)\s+(?P<name>.*?)\s+(?P<pm>On|Off|N/A|TCC|WDDM)\s*$")
_BANNER_ROW1_BUS = re.compile(
    r"^\s*(?P<bus>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f])\s+(?P<disp>\S+)\s*$"
)
_BANNER_MEMORY = re.compile(r"(?P<used>\d+)\s*MiB\s*/\s*(?P<total>\d+)\s*MiB")
_MIB = re.compile(r"^\s*(?P<value>\d+)\s*(?:MiB)?\s*$")


class NvidiaSmiParseError(ValueError):
    """nvidia-smi output that does not have the expected shape."""


def _clean(value):
    """Strip a value; None for the ``N/A`` family."""
    if value is None:
        return None
    value = value.strip()
    if value.lower() in _NOT_AVAILABLE:
        return None
    return value


def _mode(value):
    """A mode as reported (``Enabled``, ``Disabled``, ...); ``N/A`` when not applicable.

    MIG and ECC modes keep ``N/A`` as a value: "this GPU has no MIG" is an answer, not a gap.
    """
    cleaned = _clean(value)
    return cleaned if cleaned is not None else "N/A"


def _flag(value):
    """``Enabled``/``On`` -> True, ``Disabled``/``Off`` -> False, anything else -> None."""
    cleaned = (_clean(value) or "").lower()
    if cleaned in ("enabled", "on", "yes"):
        return True
    if cleaned in ("disabled", "off", "no"):
        return False
    return None


def _mib(value):
    """``81559 MiB`` or ``81559`` -> 81559; None when not reported."""
    cleaned = _clean(value)
    if cleaned is None:
        return None
    match = _MIB.match(cleaned)
    if not match:
        raise NvidiaSmiParseError("unexpected memory size %r" % value)
    return int(match.group("value"))


def _version(value):
    cleaned = _clean(value)
    return cleaned


def output_text(stdout, stderr=""):
    """stdout and stderr as one text (nvidia-smi prints its errors to stdout, some wrappers not)."""
    parts = [part for part in (stdout or "", stderr or "") if part.strip()]
    return "\n".join(part.rstrip("\n") for part in parts)


def classify_failure(text):
    """``(state, message)`` when *text* is one of nvidia-smi's failure messages, else None.

    The message is the output itself, stripped of surrounding blank space (nvidia-smi's own words,
    e.g. ``Failed to initialize NVML: Driver/library version mismatch`` plus the NVML library
    version line newer drivers add).
    """
    if not text or _Q_HEADER in text:
        return None
    for state, pattern in _FAILURES:
        if pattern.search(text):
            return state, text.strip()
    return None


def _new_gpu(index):
    return {
        "index": index,
        "name": None,
        "uuid": None,
        "memory_total_mib": None,
        "persistence_mode": None,
        "mig_mode": "N/A",
        "ecc_mode": "N/A",
        "pci_bus_id": None,
    }


def _q_blocks(text):
    """Split -q output into (header lines, [(bus id, body lines), ...])."""
    header = []
    blocks = []
    current = None
    for line in text.splitlines():
        match = _Q_GPU.match(line)
        if match:
            current = (match.group(1), [])
            blocks.append(current)
            continue
        if current is None:
            header.append(line)
        else:
            current[1].append(line)
    return header, blocks


def _q_fields(lines):
    """Map ``(section, ..., key)`` paths to values for one GPU block; the first occurrence wins.

    Sections are lines without a value; nesting follows the indentation, so ``Total`` under
    ``FB Memory Usage`` and ``Total`` under ``MIG Device`` / ``Shared FB Memory Usage`` are
    different paths.
    """
    fields = {}
    stack = []  # [(indent, section name)]
    for line in lines:
        if not line.strip():
            continue
        match = _Q_KEY_VALUE.match(line)
        if match is None:
            match = _Q_SECTION.match(line)
            value = None
            is_section = True
        else:
            value = match.group("value")
            is_section = False
        indent = len(match.group("indent"))
        key = match.group("key").strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = tuple(name for _indent, name in stack) + (key,)
        if is_section:
            stack.append((indent, key))
        else:
            fields.setdefault(path, (value or "").strip())
    return fields


def parse_query(text):
    """Parse ``nvidia-smi -q`` output.

    Returns ``{"driver_version", "cuda_version", "gpus": [...]}``. Each GPU has ``index`` (its
    position in the report: nvidia-smi lists GPUs in NVML index order, which is also what
    ``nvidia-smi -i`` and ``--query-gpu=index`` use), ``name``, ``uuid``, ``memory_total_mib``,
    ``persistence_mode`` (bool or None), ``mig_mode`` and ``ecc_mode`` (``Enabled``,
    ``Disabled`` or ``N/A``) and ``pci_bus_id``.

    Raises NvidiaSmiParseError when the text is not a -q report, or when the number of GPU blocks
    differs from ``Attached GPUs``.
    """
    if not text or _Q_HEADER not in text:
        raise NvidiaSmiParseError("not an 'nvidia-smi -q' report (no NVSMI LOG header)")
    header_lines, blocks = _q_blocks(text)
    header = _q_fields(header_lines)
    attached = _clean(header.get(("Attached GPUs",)))
    if attached is not None:
        if not attached.isdigit():
            raise NvidiaSmiParseError("unexpected 'Attached GPUs' value %r" % attached)
        if int(attached) != len(blocks):
            raise NvidiaSmiParseError(
                "'Attached GPUs' says %s but the report has %d GPU sections" % (attached, len(blocks))
            )
    gpus = []
    for index, (bus_id, lines) in enumerate(blocks):
        fields = _q_fields(lines)
        gpu = _new_gpu(index)
        gpu["name"] = _clean(fields.get(("Product Name",)))
        gpu["uuid"] = _clean(fields.get(("GPU UUID",)))
        gpu["memory_total_mib"] = _mib(fields.get(("FB Memory Usage", "Total")))
        gpu["persistence_mode"] = _flag(fields.get(("Persistence Mode",)))
        gpu["mig_mode"] = _mode(fields.get(("MIG Mode", "Current")))
        gpu["ecc_mode"] = _mode(fields.get(("ECC Mode", "Current")))
        gpu["pci_bus_id"] = _clean(fields.get(("PCI", "Bus Id"))) or bus_id
        gpus.append(gpu)
    return {
        "driver_version": _version(header.get(("Driver Version",))),
        "cuda_version": _version(header.get(("CUDA Version",))),
        "gpus": gpus,
    }


# Older names of --query-gpu fields, mapped to the name current drivers print in the header.
# Driver 580 answers a query for clocks_throttle_reasons.active with the header
# clocks_event_reasons.active (recorded: tests/fixtures/nvidia-smi/h100-80gb-hbm3-580-open.health.csv).
_CSV_FIELD_ALIASES = (("clocks_throttle_reasons.", "clocks_event_reasons."),)
_CSV_UNIT = re.compile(r"\s*\[[^\]]*\]\s*$")


def csv_field_name(header_cell):
    """The canonical name of a ``--format=csv`` header cell: units dropped, old names renamed.

    ``memory.total [MiB]`` -> ``memory.total``; ``clocks_throttle_reasons.active`` ->
    ``clocks_event_reasons.active``.
    """
    name = _CSV_UNIT.sub("", header_cell or "").strip().lower()
    for old, new in _CSV_FIELD_ALIASES:
        if name.startswith(old):
            name = new + name[len(old):]
    return name


def _csv_rows(text):
    return [row for row in csv.reader((text or "").splitlines(), skipinitialspace=True) if row]


def csv_records(text, fields=None):
    """Rows of ``--query-gpu`` (or ``--query-*``) CSV output as dicts keyed by canonical field name.

    With a header line (``--format=csv``) the names come from it (:func:`csv_field_name`), so a
    query with any fields in any order can be read; without one (``noheader``), *fields* names the
    columns in order. Values are stripped strings; the ``[N/A]`` family becomes None; units stay
    (``81559 MiB``): the caller knows what each field holds.
    """
    rows = _csv_rows(text)
    if rows and rows[0] and rows[0][0].strip().lower() in ("index", "gpu_uuid", "uuid", "gpu_bus_id", "pci.bus_id",
                                                           "name", "driver_version"):
        names = [csv_field_name(cell) for cell in rows[0]]
        rows = rows[1:]
    elif fields is not None:
        names = [csv_field_name(name) for name in fields]
    else:
        raise NvidiaSmiParseError("the CSV output has no header line and no field list was given")
    if not rows:
        raise NvidiaSmiParseError("the --query-gpu output has no rows")
    records = []
    for row in rows:
        if len(row) != len(names):
            raise NvidiaSmiParseError(
                "expected %d --query-gpu columns, got %d in %r" % (len(names), len(row), ",".join(row))
            )
        records.append(dict(zip(names, (_clean(cell) for cell in row))))
    return records


def parse_csv(text):
    """Parse ``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits`` output.

    Returns ``{"driver_version", "cuda_version": None, "gpus": [...]}`` with the GPU keys of
    :func:`parse_query`. A header line or units (``81559 MiB``) are tolerated; with a header the
    columns are read by name, and a field the query did not ask for is None (``N/A`` for the modes).
    """
    gpus = []
    driver_version = None
    for values in csv_records(text, QUERY_FIELDS):
        index = values.get("index")
        if index is None:
            raise NvidiaSmiParseError("the --query-gpu output has no index column")
        if not index.isdigit():
            raise NvidiaSmiParseError("unexpected GPU index %r" % index)
        gpu = _new_gpu(int(index))
        gpu["name"] = values.get("name")
        gpu["uuid"] = values.get("uuid")
        gpu["memory_total_mib"] = _mib(values.get("memory.total"))
        gpu["persistence_mode"] = _flag(values.get("persistence_mode"))
        gpu["mig_mode"] = _mode(values.get("mig.mode.current"))
        gpu["ecc_mode"] = _mode(values.get("ecc.mode.current"))
        gpu["pci_bus_id"] = values.get("pci.bus_id")
        gpus.append(gpu)
        driver_version = driver_version or _version(values.get("driver_version"))
    return {"driver_version": driver_version, "cuda_version": None, "gpus": gpus}


def _xml_text(element, path):
    found = element.find(path)
    return None if found is None or found.text is None else found.text


def parse_xml(text):
    """Parse ``nvidia-smi -q -x`` output (the ``nvidia_smi_log`` document).

    Returns the same shape as :func:`parse_query`. The document's DOCTYPE names an external DTD
    that is never fetched (ElementTree does not resolve external entities).

    Raises NvidiaSmiParseError when the text is not such a document, or when the number of
    ``<gpu>`` elements differs from ``<attached_gpus>``.
    """
    return parse_xml_root(xml_root(text))


def xml_root(text):
    """The ``nvidia_smi_log`` element of ``nvidia-smi -q -x`` output (parsed once, read by
    :func:`parse_xml_root` and by the health checks in ``gpu_health_xml``).

    Raises NvidiaSmiParseError when the text is not such a document.
    """
    try:
        root = ElementTree.fromstring((text or "").strip())
    except ElementTree.ParseError as exc:
        raise NvidiaSmiParseError("not an 'nvidia-smi -q -x' report: %s" % exc)
    if root.tag != "nvidia_smi_log":
        raise NvidiaSmiParseError("not an 'nvidia-smi -q -x' report (root element %r)" % root.tag)
    return root


def parse_xml_root(root):
    """:func:`parse_xml` for a document already parsed by :func:`xml_root`."""
    blocks = root.findall("gpu")
    attached = _clean(_xml_text(root, "attached_gpus"))
    if attached is not None:
        if not attached.isdigit():
            raise NvidiaSmiParseError("unexpected <attached_gpus> value %r" % attached)
        if int(attached) != len(blocks):
            raise NvidiaSmiParseError(
                "<attached_gpus> says %s but the report has %d <gpu> elements" % (attached, len(blocks))
            )
    gpus = []
    for index, element in enumerate(blocks):
        gpu = _new_gpu(index)
        gpu["name"] = _clean(_xml_text(element, "product_name"))
        gpu["uuid"] = _clean(_xml_text(element, "uuid"))
        gpu["memory_total_mib"] = _mib(_xml_text(element, "fb_memory_usage/total"))
        gpu["persistence_mode"] = _flag(_xml_text(element, "persistence_mode"))
        gpu["mig_mode"] = _mode(_xml_text(element, "mig_mode/current_mig"))
        gpu["ecc_mode"] = _mode(_xml_text(element, "ecc_mode/current_ecc"))
        gpu["pci_bus_id"] = _clean(_xml_text(element, "pci/pci_bus_id")) or element.get("id")
        gpus.append(gpu)
    return {
        "driver_version": _version(_xml_text(root, "driver_version")),
        "cuda_version": _version(_xml_text(root, "cuda_version")),
        "gpus": gpus,
    }


def _cells(line):
    stripped = line.strip()
    if not (stripped.startswith("|") and stripped.endswith("|")):
        return None
    return stripped[1:-1].split("|")


def parse_banner(text):
    """Parse plain ``nvidia-smi`` output (the table).

    Returns ``{"nvidia_smi_version", "driver_version", "cuda_version", "gpus": [...]}``. Banner
    rows have no UUID (``uuid`` is None), names may be truncated with ``...``, and there is no
    ECC mode (the ECC column counts errors), so ``ecc_mode`` is ``N/A``. ``mig_mode`` comes from
    the ``MIG M.`` row where the driver prints one (R450 and later), else ``N/A``.
    """
    header = _BANNER_HEADER.search(text or "")
    if header is None:
        raise NvidiaSmiParseError("not an nvidia-smi table (no 'NVIDIA-SMI ... Driver Version' header)")
    has_mig_row = "MIG M." in text
    gpus = []
    lines = (text or "").splitlines()
    position = 0
    while position < len(lines):
        line = lines[position]
        if "MIG devices:" in line or "Processes:" in line:
            break
        cells = _cells(line)
        position += 1
        if not cells or len(cells) < 3:
            continue
        name_match = _BANNER_ROW1_NAME.match(cells[0])
        bus_match = _BANNER_ROW1_BUS.match(cells[1])
        if not (name_match and bus_match):
            continue
        gpu = _new_gpu(int(name_match.group("index")))
        gpu["name"] = name_match.group("name")
        gpu["persistence_mode"] = _flag(name_match.group("pm"))
        gpu["pci_bus_id"] = bus_match.group("bus")
        second = _cells(lines[position]) if position < len(lines) else None
        if second and len(second) >= 2:
            memory = _BANNER_MEMORY.search(second[1])
            if memory:
                gpu["memory_total_mib"] = int(memory.group("total"))
            position += 1
            third = _cells(lines[position]) if has_mig_row and position < len(lines) else None
            if third and len(third) >= 3 and not third[0].strip():
                gpu["mig_mode"] = _mode(third[2])
                position += 1
        gpus.append(gpu)
    return {
        "nvidia_smi_version": header.group("smi"),
        "driver_version": _version(header.group("driver")),
        "cuda_version": _version(header.group("cuda")),
        "gpus": gpus,
    }


def nvidia_module_loaded(proc_modules_text):
    """True when ``/proc/modules`` lists the ``nvidia`` kernel module (a line ``nvidia <size> ...``)."""
    return any(line.startswith("nvidia ") for line in (proc_modules_text or "").splitlines())


def kernel_module_is_open(proc_version_text):
    """From ``/proc/driver/nvidia/version``: True for NVIDIA's open kernel module, False for the
    proprietary one, None when the text says neither (unreadable, no driver loaded).

    The open module says ``NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04 ...``,
    the proprietary one ``NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.161.07 ...``.
    """
    for line in (proc_version_text or "").splitlines():
        if line.startswith("NVRM version:"):
            if re.search(r"\bOpen Kernel Module\b", line):
                return True
            if re.search(r"\bKernel Module\b", line):
                return False
    return None


_CGROUP_HINTS = (
    ("docker", re.compile(r"docker")),
    ("kubepods", re.compile(r"kubepods")),
    ("containerd", re.compile(r"containerd")),
    ("podman", re.compile(r"libpod")),
    ("cri-o", re.compile(r"crio")),
    ("lxc", re.compile(r"(^|/)lxc(/|\.|$)", re.MULTILINE)),
)


def container_hints(marker_files=(), proc1_cgroup_text=None, detect_virt=None):
    """Evidence that we run inside a container, as a list of short strings (empty: none found).

    *marker_files*: the marker files that exist (``/.dockerenv``, ``/run/.containerenv``).
    *proc1_cgroup_text*: the content of ``/proc/1/cgroup`` (None when unreadable).
    *detect_virt*: ``(rc, stdout)`` of ``systemd-detect-virt -c``, or None when not available;
    it prints the container technology and exits 0 inside one, ``none`` and exits 1 outside.
    """
    hints = ["%s exists" % path for path in marker_files]
    for label, pattern in _CGROUP_HINTS:
        if proc1_cgroup_text and pattern.search(proc1_cgroup_text):
            hints.append("/proc/1/cgroup mentions %s" % label)
    if detect_virt is not None:
        rc, out = detect_virt
        kind = (out or "").strip()
        if rc == 0 and kind and kind != "none":
            hints.append("systemd-detect-virt -c: %s" % kind)
    return hints


def empty_facts():
    """The facts dict with every key present, for the states where nvidia-smi gave no data."""
    return {
        "driver_present": False,
        "state": STATE_ABSENT,
        "message": None,
        "nvidia_smi_path": None,
        "source": None,
        "driver_version": None,
        "cuda_version": None,
        "gpus": [],
        "gpu_count": 0,
        "kernel_module_loaded": None,
        "kernel_module_version": None,
        "kernel_module_open": None,
        "in_container": False,
        "in_container_hints": [],
    }
