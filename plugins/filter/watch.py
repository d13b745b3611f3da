# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue over module_utils/watch_config.py (doc: mirror_watch_config.yml beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.module_utils.config_merge import _plain
from ansible_collections.gpulab.provision.plugins.module_utils.watch import WatchError
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import watch_config


def mirror_watch_config(mirrors, services, policy=None, pin=None, clients=None, settings=None, only=None, require=None):
    try:
        return watch_config(_plain(mirrors), _plain(services), _plain(policy), _plain(pin), _plain(clients),
                            _plain(settings), _plain(only), _plain(require))
    except WatchError as exc:
        raise AnsibleFilterError("gpulab.provision.mirror_watch_config: %s" % exc) from exc


class FilterModule:
    """The configuration of gpulab-mirror-watch from the inventory."""

    def filters(self):
        return {"mirror_watch_config": mirror_watch_config}
