# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_pattern: the checked host pattern of a play (module_utils/targets.py). Doc: host_pattern.yml.

Every play of the collection's playbooks templates its ``hosts:`` with this filter. That templating
runs in the controller's main process, so the collection's filter plugins are loaded there once and
every forked worker inherits them (a worker that loads them itself pays ~50 ms per host and task).
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.targets import host_pattern
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


class FilterModule:
    """The host pattern of a play."""

    def filters(self):
        return {"host_pattern": named_filter("host_pattern", host_pattern)}
