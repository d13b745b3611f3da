# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror_watch_config filter: thin glue that names itself in errors."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.filter.watch import FilterModule


def test_filter_returns_the_config_and_names_itself_on_errors():
    watch = FilterModule().filters()["mirror_watch_config"]
    got = watch({"pypi": [{"name": "a", "url": "https://a.example/simple"}]}, {"pypi": {"kind": "pypi"}},
                None, None, None, {"confirm": 3}, [])
    assert got["services"] == ["pypi"] and got["config"]["confirm"] == 3
    with pytest.raises(AnsibleFilterError, match="gpulab.provision.mirror_watch_config: .*mirror_watch_confirm"):
        watch({"pypi": [{"name": "a", "url": "https://a.example/simple"}]}, {"pypi": {"kind": "pypi"}},
              settings={"confirm": "two"})
