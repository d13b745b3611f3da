# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_cache: the manifest cache."""

from __future__ import annotations

import os

from image_archive_helpers import build_archive  # shared with the other image_archive tests

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_cache as ia_cache
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_manifest as ia_manifest


def test_cache_ignored_when_others_can_write(tmp_path):
    path = str(tmp_path / "a.tar")
    build_archive(path)
    cache_dir = tmp_path / "c"
    cache = ia_cache.ManifestCache(str(cache_dir))
    st = os.stat(path)
    info = ia_manifest.scan_archive(path)
    assert cache.store(path, st, info)
    assert cache.load(path, st)["images"] == info["images"]
    os.chmod(str(cache_dir), 0o777)
    assert cache.load(path, st) is None
