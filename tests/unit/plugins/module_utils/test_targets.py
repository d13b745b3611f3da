# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_pattern: gpulab_target as one host pattern, or an error naming the variable."""

from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.targets import host_pattern


@pytest.mark.parametrize("value, expected", [
    ("all", "all"), (" gpu:&rack1 ", "gpu:&rack1"), (["gpu", "cache1"], "gpu:cache1"), ("gpu[0:9]", "gpu[0:9]"),
])
def test_a_pattern_or_a_list_of_patterns(value, expected):
    assert host_pattern(value) == expected


@pytest.mark.parametrize("value", ["", "  ", None, [], ["gpu", ""], 3.5, True, {"gpu": 1}])
def test_an_empty_or_odd_target_names_the_variable_and_the_fix(value):
    with pytest.raises(ValueError) as info:
        host_pattern(value)
    assert str(info.value).startswith("gpulab_target: ") and "-e gpulab_target=gpu" in str(info.value)


@pytest.mark.parametrize("value, expected", [(123, "123"), ([123, "web"], "123:web"), ("007", "007")])
def test_a_host_name_that_is_a_number_is_that_host(value, expected):
    """gpulab_target: 123 in YAML is the number 123: the host called 123, as -e gpulab_target=123 says."""
    assert host_pattern(value) == expected


def test_another_variable_is_named():
    with pytest.raises(ValueError, match="^gpulab_validate_hosts: "):
        host_pattern("", "gpulab_validate_hosts")
