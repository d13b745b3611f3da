# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue over module_utils/renderers.py (doc: render_client_config.yml beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.module_utils.renderers import (
    RenderError,
    render_client_config as _render,
)


def render_client_config(current, client, selection, options=None):
    try:
        return _render(current, client, selection, options)
    except RenderError as exc:
        raise AnsibleFilterError("gpulab.provision.render_client_config: %s" % exc) from exc


class FilterModule:
    """Render a client's configuration file from the mirror selection."""

    def filters(self):
        return {"render_client_config": render_client_config}
