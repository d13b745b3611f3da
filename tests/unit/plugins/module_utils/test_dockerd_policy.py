# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.dockerd_policy import (
    DockerdPolicyError,
    dockerd_action,
)

ID1 = "0123456789ab"
ID2 = "ba9876543210" * 5 + "abcd"


def test_nothing_needed_is_none():
    assert dockerd_action("none", "always", 0, "false", 0, "")["action"] == "none"


def test_daemon_down_is_none_whatever_the_policy():
    result = dockerd_action("restart", "always", 1, "", None, "")
    assert result["action"] == "none"
    assert "not running" in result["reason"]
    assert result["running_containers"] is None


def test_reload_when_only_reloadable_keys_changed():
    assert dockerd_action("reload", "never", 0, "false", 0, ID1)["action"] == "reload"


@pytest.mark.parametrize("ps_stdout,expected,count", [
    ("", "restart", 0),
    (ID1 + "\n", "pending", 1),
    (ID1 + "\n" + ID2 + "\n", "pending", 2),
])
def test_if_safe_counts_running_containers(ps_stdout, expected, count):
    result = dockerd_action("restart", "if_safe", 0, "false", 0, ps_stdout)
    assert result["action"] == expected
    assert result["running_containers"] == count


def test_if_safe_restarts_under_live_restore():
    result = dockerd_action("restart", "if_safe", 0, "true\n", 0, ID1)
    assert result["action"] == "restart"
    assert result["live_restore"] is True


@pytest.mark.parametrize("ps_rc,ps_stdout", [
    (1, ""),                                   # docker ps failed: the old code read this as 0 containers
    (None, ""),                                # never ran
    (0, "Error response from daemon: x\n"),    # answered with something that is not a list of IDs
])
def test_if_safe_unknown_containers_never_restarts(ps_rc, ps_stdout):
    result = dockerd_action("restart", "if_safe", 0, "false", ps_rc, ps_stdout)
    assert result["action"] == "pending"
    assert result["running_containers"] is None
    assert "unknown" in result["reason"]


def test_always_and_never():
    assert dockerd_action("restart", "always", 0, "false", 1, "")["action"] == "restart"
    result = dockerd_action("restart", "never", 0, "true", 0, "", variable="nvidia_container_toolkit_restart_docker")
    assert result["action"] == "pending"
    assert "nvidia_container_toolkit_restart_docker is never" in result["reason"]


def test_bad_inputs_name_the_variable():
    with pytest.raises(DockerdPolicyError, match="docker_mirror_restart: 'sometimes'"):
        dockerd_action("restart", "sometimes", 0, "", 0, "")
    with pytest.raises(DockerdPolicyError, match="needs 'maybe'"):
        dockerd_action("maybe")
