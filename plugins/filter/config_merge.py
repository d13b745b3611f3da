# -*- coding: utf-8 -*-
# Copyright: gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue over module_utils/config_merge.py (docs: one .yml per filter beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.module_utils import config_merge as _cm


def _wrap(name, func):
    def filter_func(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _cm.ConfigMergeError as exc:
            raise AnsibleFilterError("gpulab.provision.%s: %s" % (name, exc))
    filter_func.__name__ = name
    filter_func.__doc__ = func.__doc__
    return filter_func


class FilterModule(object):
    """Merge filters for pip.conf, .condarc and daemon.json."""

    def filters(self):
        return {
            "pip_conf_merge": _wrap("pip_conf_merge", _cm.pip_conf_merge),
            "pip_conf_parse": _wrap("pip_conf_parse", _cm.pip_conf_parse),
            "condarc_merge": _wrap("condarc_merge", _cm.condarc_merge),
            "daemon_json_merge": _wrap("daemon_json_merge", _cm.daemon_json_merge),
            "daemon_json_changed_keys": _wrap("daemon_json_changed_keys", _cm.daemon_json_changed_keys),
            "daemon_json_needs_restart": _wrap("daemon_json_needs_restart", _cm.daemon_json_needs_restart),
        }
