# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue over module_utils/dockerd_policy.py (doc: dockerd_action.yml beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.module_utils.dockerd_policy import (
    DockerdPolicyError,
    dockerd_action as _dockerd_action,
)


def dockerd_action(needs, policy="if_safe", info_rc=None, info_stdout="", ps_rc=None, ps_stdout="",
                   variable="docker_mirror_restart"):
    try:
        return _dockerd_action(needs, policy, info_rc, info_stdout, ps_rc, ps_stdout, variable)
    except DockerdPolicyError as exc:
        raise AnsibleFilterError("gpulab.provision.dockerd_action: %s" % exc) from exc


class FilterModule:
    """How a change reaches dockerd."""

    def filters(self):
        return {"dockerd_action": dockerd_action}
