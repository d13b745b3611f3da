# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter glue for render_client_config and dockerd_action: errors become filter errors, naming the filter."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.filter.dockerd_policy import FilterModule as PolicyFilters
from ansible_collections.gpulab.provision.plugins.filter.renderers import FilterModule as RenderFilters

RENDER = RenderFilters().filters()["render_client_config"]
ACTION = PolicyFilters().filters()["dockerd_action"]
SELECTION = {"status": "ok", "name": "m", "url": "https://m.example/simple", "url_masked": "https://m.example/simple",
             "ranked": [], "rejected": []}


def test_render_filter_returns_content_and_summary():
    result = RENDER("", "pip_conf", SELECTION)
    assert result["content"] == "[global]\nindex-url = https://m.example/simple\n"
    assert result["summary"]["mirror"] == "m" and result["changed"] is True


def test_render_filter_error_names_the_filter_and_the_file():
    with pytest.raises(AnsibleFilterError, match=r"gpulab\.provision\.render_client_config: /etc/pip\.conf is not a valid INI"):
        RENDER("garbage\n", "pip_conf", SELECTION, {"path": "/etc/pip.conf"})


def test_action_filter():
    assert ACTION("restart", "if_safe", 0, "false", 1, "")["action"] == "pending"
    with pytest.raises(AnsibleFilterError, match=r"gpulab\.provision\.dockerd_action: docker_mirror_restart"):
        ACTION("restart", "later")
