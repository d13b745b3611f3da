# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_space: room for a load."""

from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_space as ia_space
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


def test_free_bytes_walks_up_to_an_existing_dir(tmp_path):
    checked, avail = ia_space.free_bytes(str(tmp_path / "not" / "yet"))
    assert checked == str(tmp_path) and avail > 0


def test_check_space_asks_twice_the_tar_plus_the_margin(tmp_path):
    _checked, avail = ia_space.free_bytes(str(tmp_path))
    space = ia_space.check_space(str(tmp_path / "sub"), 1000, min_free_bytes=24)
    assert space["path"] == str(tmp_path) and space["needed"] == 2024 and space["available"] > 0
    with pytest.raises(ImageArchiveError) as exc:
        ia_space.check_space(str(tmp_path), avail, min_free_bytes=1)
    assert exc.value.kind == "space" and exc.value.details["needed"] == 2 * avail + 1
    assert "not enough free space in %s" % tmp_path in str(exc.value)
