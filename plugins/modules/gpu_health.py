#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_health
short_description: Judge a GPU node's health (Xid, ECC, row remapping, PCIe, clocks, temperature, NVLink, fabric)
description:
  - Reads one C(nvidia-smi -q -x), one C(nvidia-smi nvlink -s), the kernel log (Xid events of this boot) and, where
    C(dcgmi) is installed, C(dcgmi diag -r 1), every command under a deadline, and judges each signal as a check
    C({id, gpu, uuid, observed, limit, severity, action, detail}) per GPU (index and UUID) or for the node.
  - The verdict is V(degraded) when any check is critical, else V(unknown) when any check could not run (a check
    that could not run is never a pass), else V(healthy); warnings keep a node healthy and are counted.
  - The same assessment as the C(gpulab-gpu-health) command that the C(gpulab.provision.gpu_health) role installs;
    the role passes the shipped Xid policy table and the inventory's settings. Checks and defaults are described in
    that role's README.
  - Reads only; never changes the host's GPUs or settings. With O(metrics_dir) it also writes the metrics file
    C(gpulab_gpu_health.prom) there (and the concern's state C(.gpulab-gpu_health.json) beside it), which is not
    reported as a change (it records when the check ran).
author:
  - gpulab.provision maintainers (!UNKNOWN)
version_added: "1.3.0"
extends_documentation_fragment:
  - gpulab.provision.attributes
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same commands in check mode, and writes no metrics file.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Changes nothing (the metrics file it may write records the run's time and is not a change).
options:
  nvidia_smi:
    description: The nvidia-smi command, a name looked up on C(PATH) (then C(/usr/bin), C(/usr/local/nvidia/bin)) or an absolute path.
    type: str
    default: nvidia-smi
  command_timeout_s:
    description: Deadline of each command in seconds (nvidia-smi, journalctl, dmesg).
    type: float
    default: 10
  kernel_log_sources:
    description:
      - Where Xid lines are read, in order; the first that can be read is used. V(journal) (C(journalctl -k -b 0)),
        V(dmesg), or an absolute file path (only its current boot is read). None readable makes the C(xid) check unknown.
    type: list
    elements: str
    default: [journal, /var/log/kern.log, dmesg]
  slurm_scontrol:
    description: The scontrol command the C(gpulab-gpu-health --slurm) command uses (kept in RV(config) only).
    type: str
    default: scontrol
  expected_count:
    description: The number of GPUs this host must have (C(gpulab_gpu_expected_count)); null skips the count check.
    type: raw
  driver_pin:
    description: The driver version this host must run (C(gpulab_gpu_driver_pin)); V(580) matches any 580.x; null skips the check.
    type: raw
  thresholds:
    description: Threshold overrides (C(gpulab_gpu_health_thresholds)); unknown names and wrong types are refused.
    type: dict
    default: {}
  xid_policy:
    description: The base Xid policy table, code -> C({severity, action}) (the role passes the one it ships).
    type: dict
    default: {}
  xid_policy_overrides:
    description: Entries merged over O(xid_policy) (C(gpulab_gpu_health_xid_policy)).
    type: dict
    default: {}
  disabled_checks:
    description: Check ids not to run (C(gpulab_gpu_health_disabled_checks)).
    type: list
    elements: str
    default: []
  validate_only:
    description: Only check the settings and return RV(config); run nothing on the host.
    type: bool
    default: false
  metrics_dir:
    description:
      - The directory node_exporter's textfile collector reads (C(gpulab_metrics_dir); Debian's is
        C(/var/lib/prometheus/node-exporter)); the module writes C(gpulab_gpu_health.prom) there after the assessment
        (the verdict, each check's status per GPU, this boot's Xid events per GPU and code as a counter).
      - Empty (the default) writes no metrics. A directory that is missing or not writable, or a failed write, is a
        warning naming C(gpulab_metrics_dir); the assessment and its verdict are returned all the same.
      - Not used with O(validate_only) nor in check mode.
    type: str
    default: ""
    version_added: 1.4.0
"""

EXAMPLES = r"""
- name: Judge this GPU node
  gpulab.provision.gpu_health:
    expected_count: 8
    driver_pin: "580"
    xid_policy: "{{ _gpu_health_xid_policy }}"
  register: __health

- name: Use the role instead (it passes the shipped Xid policy and the inventory's settings)
  ansible.builtin.include_role:
    name: gpulab.provision.gpu_health
    tasks_from: assess
"""

RETURN = r"""
health:
  description: The assessment.
  type: dict
  returned: unless O(validate_only)
  contains:
    verdict:
      description: V(healthy), V(degraded) or V(unknown).
      type: str
      sample: degraded
    summary:
      description: One line, the verdict and the worst findings.
      type: str
      sample: "degraded: GPU 0 remapped_rows_pending: Yes -> reset"
    warnings:
      description: Number of checks with severity V(warn).
      type: int
    gpus:
      description: The GPUs nvidia-smi listed, C({index, uuid, bus_id, name}).
      type: list
      elements: dict
    checks:
      description: Every check, C({id, gpu, uuid, observed, limit, severity, action, detail}); C(gpu) is null for node-level checks.
      type: list
      elements: dict
metrics:
  description: The metrics file written from this assessment.
  type: dict
  returned: when O(metrics_dir) is set, not in check mode, and the file was written
  contains:
    path:
      description: The C(.prom) file.
      type: str
      sample: /var/lib/prometheus/node-exporter/gpulab_gpu_health.prom
    changed:
      description: Whether its content changed (it holds the run's time, so nearly always true).
      type: bool
config:
  description: The normalised settings (the content of C(/etc/gpulab/gpu-health.json) that the role writes).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health import (
    GpuHealthConfigError,
    assess,
    build_config,
)
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_host import observe
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_metrics import write_or_warn

SETTINGS = ("nvidia_smi", "command_timeout_s", "kernel_log_sources", "slurm_scontrol", "expected_count",
            "driver_pin", "thresholds", "xid_policy", "xid_policy_overrides", "disabled_checks")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            command_timeout_s=dict(type="float", default=10),
            kernel_log_sources=dict(type="list", elements="str", default=["journal", "/var/log/kern.log", "dmesg"]),
            slurm_scontrol=dict(type="str", default="scontrol"),
            expected_count=dict(type="raw"),
            driver_pin=dict(type="raw"),
            thresholds=dict(type="dict", default={}),
            xid_policy=dict(type="dict", default={}),
            xid_policy_overrides=dict(type="dict", default={}),
            disabled_checks=dict(type="list", elements="str", default=[]),
            validate_only=dict(type="bool", default=False),
            metrics_dir=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    try:
        config = build_config({name: module.params[name] for name in SETTINGS})
    except GpuHealthConfigError as exc:
        module.fail_json(msg="gpu_health: bad settings: %s" % "; ".join(exc.problems), problems=exc.problems)
    if module.params["validate_only"]:
        module.exit_json(changed=False, config=config)
    observed = observe(config)
    health = assess(observed, config)
    result = dict(changed=False, health=health, config=config)
    if not module.check_mode:
        written, warning = write_or_warn(module.params["metrics_dir"], health, observed)
        if warning:
            module.warn(warning)
        if written:
            result["metrics"] = written
    module.exit_json(**result)


if __name__ == "__main__":
    main()
