#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_gpu_facts
short_description: Report the NVIDIA driver, CUDA version and GPUs of a host
version_added: "1.0.0"
description:
  - Runs C(nvidia-smi) and returns what it reports as facts (C(ansible_facts.gpulab_gpu)) and as
    the plain return value RV(gpu).
  - A host without the driver is a normal answer, not a failure. When C(nvidia-smi) is missing the
    module succeeds with RV(gpu.driver_present=false) and RV(gpu.state=absent). When it is present
    but fails (no GPU, driver/library version mismatch after a driver upgrade, driver not loaded),
    the module succeeds too, with the matching RV(gpu.state) and the message C(nvidia-smi) printed,
    word for word, in RV(gpu.message).
  - "Where the data comes from (O(source=auto)): C(nvidia-smi -q) first. That report carries every
    field (driver and CUDA version, name, UUID, memory, persistence, MIG and ECC modes, PCI bus id),
    and it is the format people paste into bug reports, so the parser is tested end to end against
    real recorded outputs. If the C(-q) report cannot be parsed (a future driver changing its
    layout), the module falls back to C(nvidia-smi --query-gpu=index,name,uuid,memory.total,
    persistence_mode,mig.mode.current,ecc.mode.current,pci.bus_id,driver_version
    --format=csv,noheader,nounits), the interface NVIDIA provides for scripts, and
    reads the CUDA version from the header of plain C(nvidia-smi). O(source=query) and O(source=csv)
    force one of the two."
  - Also reports whether the C(nvidia) kernel module is loaded (from C(/proc/modules)), its version
    (from C(/sys/module/nvidia/version)), whether it is NVIDIA's open kernel module (from
    C(/proc/driver/nvidia/version)), and whether the host looks like a container
    (C(/.dockerenv), C(/run/.containerenv), C(/proc/1/cgroup), C(systemd-detect-virt -c)).
  - Every command runs with a deadline (O(timeout)). A C(nvidia-smi) that hangs (a GPU fallen off
    the bus, a driver stuck in the kernel) is killed at the deadline and the module answers
    RV(gpu.state=timed_out) with a message naming the command and the deadline; it never blocks
    the play. A process stuck in the kernel that cannot be killed is left behind, not waited for.
  - Read-only. It never changes the host and always reports C(changed=false).
author:
  - gpulab.provision maintainers (!UNKNOWN)
options:
  nvidia_smi_path:
    description:
      - Path of the C(nvidia-smi) executable.
      - When not set, O(nvidia_smi) is looked up on E(PATH), then in C(/usr/bin).
      - When set to a path that does not exist or is not executable, the driver is reported absent.
    type: path
  nvidia_smi:
    description:
      - The C(nvidia-smi) command to look up when O(nvidia_smi_path) is not set, E(PATH) first (a driver on its own
        mount, such as C(/usr/local/nvidia/bin), wins over a stale C(/usr/bin/nvidia-smi)), then C(/usr/bin).
    type: str
    default: nvidia-smi
    version_added: "1.3.0"
  source:
    description:
      - Which C(nvidia-smi) output to read the GPUs from.
      - V(auto) reads C(nvidia-smi -q) and falls back to the CSV query when that report cannot be
        parsed.
      - V(query) reads C(nvidia-smi -q) only.
      - V(csv) reads C(nvidia-smi --query-gpu=... --format=csv,noheader,nounits), plus plain
        C(nvidia-smi) for the CUDA version.
      - V(xml) reads C(nvidia-smi -q -x), the same report as XML.
    type: str
    choices: [auto, query, csv, xml]
    default: auto
  timeout:
    description:
      - Seconds each command (C(nvidia-smi), C(systemd-detect-virt)) may run before it is killed.
      - When C(nvidia-smi) misses it, RV(gpu.state) is V(timed_out) and no other C(nvidia-smi) call
        is tried (it would hang the same way).
      - A healthy C(nvidia-smi -q) answers in well under a second per GPU; the default leaves room
        for a slow first NVML initialisation on hosts without persistence mode.
    type: float
    default: 30
  proc_modules:
    description:
      - File listing the loaded kernel modules. Override for tests only.
    type: path
    default: /proc/modules
  module_version_path:
    description:
      - File holding the version of the loaded C(nvidia) kernel module. Override for tests only.
    type: path
    default: /sys/module/nvidia/version
  driver_version_path:
    description:
      - File in which the loaded driver names its kernel module flavour (open or proprietary).
        Override for tests only.
    type: path
    default: /proc/driver/nvidia/version
extends_documentation_fragment:
  - gpulab.provision.attributes
  - gpulab.provision.attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same commands in check mode.
  diff_mode:
    support: none
  facts:
    support: full
    details: Sets C(ansible_facts.gpulab_gpu).
  idempotent:
    support: full
notes:
  - GPU indexes are the order of C(nvidia-smi) (NVML order, by PCI bus id), not necessarily the
    order CUDA applications see unless they set E(CUDA_DEVICE_ORDER=PCI_BUS_ID).
  - RV(gpu.cuda_version) is the newest CUDA version the installed driver supports, not the
    version of a CUDA toolkit installed on the host.
seealso:
  - name: nvidia-smi documentation
    description: NVIDIA System Management Interface.
    link: https://docs.nvidia.com/deploy/nvidia-smi/index.html
"""

EXAMPLES = r"""
- name: Gather GPU facts
  gpulab.provision.nvidia_gpu_facts:

- name: Install the driver only where it is missing
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} needs the NVIDIA driver"
  when: not ansible_facts.gpulab_gpu.driver_present

- name: A driver upgrade without reboot leaves user space and kernel module out of step
  ansible.builtin.debug:
    msg: "reboot needed: {{ ansible_facts.gpulab_gpu.message }}"
  when: ansible_facts.gpulab_gpu.state == 'version_mismatch'

- name: Use a specific nvidia-smi and the CSV interface
  gpulab.provision.nvidia_gpu_facts:
    nvidia_smi_path: /usr/local/nvidia/bin/nvidia-smi
    source: csv
  register: __gpu

- name: Fail on hosts with MIG enabled on any GPU
  ansible.builtin.assert:
    that: __gpu.gpu.gpus | selectattr('mig_mode', 'equalto', 'Enabled') | list | length == 0
"""

RETURN = r"""
gpu:
  description: What C(nvidia-smi) reported. The same dictionary is set as C(ansible_facts.gpulab_gpu).
  returned: always
  type: dict
  contains:
    driver_present:
      description:
        - Whether the NVIDIA user-space driver tools are installed (C(nvidia-smi) was found).
        - Whether they work is RV(gpu.state).
      type: bool
      returned: always
      sample: true
    state:
      description:
        - V(ok) GPUs were listed.
        - V(absent) C(nvidia-smi) is not installed.
        - V(no_devices) the driver works but sees no GPU (C(No devices were found)).
        - "V(version_mismatch) C(Failed to initialize NVML: Driver/library version mismatch),
          typically a driver upgrade without reboot."
        - "V(nvml_error) any other failure of C(nvidia-smi), for example C(NVIDIA-SMI has failed
          because it couldn't communicate with the NVIDIA driver) or C(Failed to initialize NVML:
          Unknown Error)."
        - V(timed_out) C(nvidia-smi) did not answer within O(timeout) seconds and was killed
          (RV(gpu.message) names the command and the deadline). Often a hung GPU or driver; look
          for Xid errors in the kernel log.
      type: str
      returned: always
      choices: [ok, absent, no_devices, version_mismatch, nvml_error, timed_out]
      sample: ok
    message:
      description:
        - For the failure states, the output of C(nvidia-smi), verbatim (stripped of surrounding
          blank lines). For V(absent), why the driver is considered absent. Null for V(ok).
      type: str
      returned: always
      sample: "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 535.161"
    nvidia_smi_path:
      description: The C(nvidia-smi) that was run. Null when none was found.
      type: str
      returned: always
      sample: /usr/bin/nvidia-smi
    source:
      description: Which output the GPU list was read from, V(query) (C(nvidia-smi -q)), V(xml) (C(-q -x)) or V(csv). Null unless RV(gpu.state=ok).
      type: str
      returned: always
      sample: query
    driver_version:
      description: The NVIDIA driver version.
      type: str
      returned: always
      sample: "590.48.01"
    cuda_version:
      description: The newest CUDA version the driver supports (C(CUDA Version) in C(nvidia-smi -q) or its table header).
      type: str
      returned: always
      sample: "13.1"
    gpu_count:
      description: Number of GPUs listed.
      type: int
      returned: always
      sample: 1
    gpus:
      description: One entry per GPU, in C(nvidia-smi) index order.
      type: list
      elements: dict
      returned: always
      contains:
        index:
          description: The C(nvidia-smi) index of the GPU.
          type: int
          sample: 0
        name:
          description: Product name.
          type: str
          sample: NVIDIA H100 80GB HBM3
        uuid:
          description: GPU UUID.
          type: str
          sample: GPU-51ae0086-e1ac-4a20-f062-9caa44e4df6d
        memory_total_mib:
          description: Total framebuffer memory in MiB.
          type: int
          sample: 81559
        persistence_mode:
          description: Whether persistence mode is enabled; null where it does not apply (Windows).
          type: bool
          sample: true
        mig_mode:
          description: Current MIG mode, V(Enabled), V(Disabled) or V(N/A) (GPU without MIG).
          type: str
          sample: Disabled
        ecc_mode:
          description: Current ECC mode, V(Enabled), V(Disabled) or V(N/A) (GPU without ECC).
          type: str
          sample: Enabled
        pci_bus_id:
          description: PCI bus id as C(domain:bus:device.function).
          type: str
          sample: "00000000:00:09.0"
    kernel_module_loaded:
      description:
        - Whether C(/proc/modules) lists the C(nvidia) kernel module.
        - Where C(/proc/modules) cannot be read, true when C(/sys/module/nvidia/version) exists (sysfs
          has that directory only while the module is loaded), else null (unknown).
      type: bool
      returned: always
      sample: true
    kernel_module_version:
      description: Content of C(/sys/module/nvidia/version); null when absent.
      type: str
      returned: always
      sample: "590.48.01"
    kernel_module_open:
      description:
        - Whether the loaded module is NVIDIA's open GPU kernel module (C(/proc/driver/nvidia/version)
          says C(Open Kernel Module)); false for the proprietary module; null when that file is
          absent or says neither.
      type: bool
      returned: always
      sample: true
    in_container:
      description: Whether the host looks like a container (any of RV(gpu.in_container_hints)).
      type: bool
      returned: always
      sample: false
    in_container_hints:
      description: The evidence behind RV(gpu.in_container).
      type: list
      elements: str
      returned: always
      sample: ["/.dockerenv exists", "systemd-detect-virt -c: docker"]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.gpulab.provision.plugins.module_utils.command_deadline import run_with_deadline
from ansible_collections.gpulab.provision.plugins.module_utils.nvidia_smi import (
    QUERY_GPU_ARGS,
    STATE_NVML_ERROR,
    STATE_OK,
    STATE_TIMED_OUT,
    NvidiaSmiParseError,
    classify_failure,
    container_hints,
    empty_facts,
    kernel_module_is_open,
    nvidia_module_loaded,
    output_text,
    parse_banner,
    parse_csv,
    parse_query,
    parse_xml,
)

# Host paths read for the container verdict (module attributes so tests can point them elsewhere).
CONTAINER_MARKER_FILES = ("/.dockerenv", "/run/.containerenv")
PROC1_CGROUP = "/proc/1/cgroup"
DEFAULT_NVIDIA_SMI_DIRS = ["/usr/bin"]


def _read(path):
    """File content, or None when it cannot be read."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _find_nvidia_smi(module, configured, name="nvidia-smi"):
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured, None
        return None, "%s does not exist or is not executable" % configured
    # PATH first, then the fallback directories (get_bin_path's opt_dirs would come before PATH).
    found = module.get_bin_path(name, required=False)
    for directory in DEFAULT_NVIDIA_SMI_DIRS:
        candidate = os.path.join(directory, name)
        if not found and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            found = candidate
    if found:
        return found, None
    return None, "%s not found on PATH or in %s" % (name, ", ".join(DEFAULT_NVIDIA_SMI_DIRS))


class _TimedOut(Exception):
    """nvidia-smi missed its deadline; the message names the command and the deadline."""


def _run(module, argv):
    """(rc, combined output) of one nvidia-smi call, bounded by the timeout option.

    LC_ALL=C keeps the messages in English. Raises _TimedOut when the deadline passed.
    """
    try:
        result = run_with_deadline(argv, module.params["timeout"], env={"LC_ALL": "C"})
    except OSError as exc:
        return 127, "could not run %s: %s" % (argv[0], to_native(exc))
    if result.timed_out:
        raise _TimedOut(result.describe_timeout()
                        + "; the GPU or its driver may be hung (look for Xid errors in the kernel log)")
    return result.rc, output_text(result.stdout, result.stderr)


def _failure_or_none(rc, text):
    """(state, message) for a failed run, None for a successful one."""
    failure = classify_failure(text)
    if failure:
        return failure
    if rc != 0:
        return STATE_NVML_ERROR, text.strip() or "nvidia-smi exited with status %d and printed nothing" % rc
    return None


def _gather_query(module, smi):
    rc, text = _run(module, [smi, "-q"])
    failure = _failure_or_none(rc, text)
    if failure:
        return failure, None
    return None, parse_query(text)


def _gather_xml(module, smi):
    rc, text = _run(module, [smi, "-q", "-x"])
    failure = _failure_or_none(rc, text)
    if failure:
        return failure, None
    return None, parse_xml(text)


def _gather_csv(module, smi):
    rc, text = _run(module, [smi] + list(QUERY_GPU_ARGS))
    failure = _failure_or_none(rc, text)
    if failure:
        return failure, None
    parsed = parse_csv(text)
    return None, parsed


def _cuda_from_banner(module, smi):
    """The CUDA version from the header of plain nvidia-smi; None when it cannot be had."""
    try:
        rc, text = _run(module, [smi])
    except _TimedOut:
        return None
    if rc != 0 or classify_failure(text):
        return None
    try:
        return parse_banner(text)["cuda_version"]
    except NvidiaSmiParseError:
        return None


def _detect_virt(module):
    """(rc, stdout) of ``systemd-detect-virt -c``; None where systemd-detect-virt is not installed."""
    detect_virt = module.get_bin_path("systemd-detect-virt", required=False)
    if not detect_virt:
        return None
    try:
        result = run_with_deadline([detect_virt, "-c"], module.params["timeout"])
    except OSError:
        return None
    if result.timed_out:
        return None
    return result.rc, result.stdout


def _host_facts(module, facts):
    modules_text = _read(module.params["proc_modules"])
    version = _read(module.params["module_version_path"])
    facts["kernel_module_version"] = (version.strip() or None) if version is not None else None
    if modules_text is not None:
        facts["kernel_module_loaded"] = nvidia_module_loaded(modules_text)
    else:
        # /proc/modules unreadable (some sandboxes have none): /sys/module/nvidia exists only while
        # the module is loaded, so its version file is evidence enough; without it, unknown.
        facts["kernel_module_loaded"] = True if facts["kernel_module_version"] else None
    facts["kernel_module_open"] = kernel_module_is_open(_read(module.params["driver_version_path"]))

    markers = [path for path in CONTAINER_MARKER_FILES if os.path.exists(path)]
    hints = container_hints(markers, _read(PROC1_CGROUP), _detect_virt(module))
    facts["in_container"] = bool(hints)
    facts["in_container_hints"] = hints


def gather(module):
    """The facts dict (see RETURN)."""
    facts = empty_facts()
    _host_facts(module, facts)

    smi, reason = _find_nvidia_smi(module, module.params["nvidia_smi_path"], module.params["nvidia_smi"])
    if smi is None:
        facts["message"] = reason
        return facts
    facts["driver_present"] = True
    facts["nvidia_smi_path"] = smi

    try:
        return _gather_gpus(module, smi, facts)
    except _TimedOut as exc:
        facts["state"], facts["message"] = STATE_TIMED_OUT, str(exc)
        return facts


def _gather_gpus(module, smi, facts):
    source = module.params["source"]
    failure = parsed = None
    parse_error = None
    used = None
    if source == "xml":
        try:
            failure, parsed = _gather_xml(module, smi)
            used = "xml"
        except NvidiaSmiParseError as exc:
            module.fail_json(msg="could not parse the output of '%s -q -x': %s" % (smi, exc))
    if source in ("auto", "query"):
        try:
            failure, parsed = _gather_query(module, smi)
            used = "query"
        except NvidiaSmiParseError as exc:
            if source == "query":
                module.fail_json(msg="could not parse the output of '%s -q': %s" % (smi, exc))
            parse_error = exc
    if parsed is None and failure is None:
        try:
            failure, parsed = _gather_csv(module, smi)
            used = "csv"
        except NvidiaSmiParseError as exc:
            detail = "; the -q report could not be parsed either: %s" % parse_error if parse_error else ""
            module.fail_json(msg="could not parse the output of '%s --query-gpu': %s%s" % (smi, exc, detail))

    if failure:
        facts["state"], facts["message"] = failure
        return facts

    facts["state"] = STATE_OK
    facts["source"] = used
    facts["driver_version"] = parsed["driver_version"]
    facts["cuda_version"] = parsed["cuda_version"] or _cuda_from_banner(module, smi)
    facts["gpus"] = parsed["gpus"]
    facts["gpu_count"] = len(parsed["gpus"])
    return facts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi_path=dict(type="path"),
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            source=dict(type="str", default="auto", choices=["auto", "query", "csv", "xml"]),
            timeout=dict(type="float", default=30),
            proc_modules=dict(type="path", default="/proc/modules"),
            module_version_path=dict(type="path", default="/sys/module/nvidia/version"),
            driver_version_path=dict(type="path", default="/proc/driver/nvidia/version"),
        ),
        supports_check_mode=True,
    )
    if module.params["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds, got %s" % module.params["timeout"])
    facts = gather(module)
    module.exit_json(changed=False, gpu=facts, ansible_facts={"gpulab_gpu": facts})


if __name__ == "__main__":
    main()
