# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_preload filters are thin glue: right names, documented, errors name the filter."""

from __future__ import annotations

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.filter.image_preload import FilterModule

FILTERS = FilterModule().filters()
HERE = os.path.dirname(__file__)
DOCS = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", "plugins", "filter"))
NAMES = {"image_preload_entries", "image_preload_urls", "image_preload_present", "image_preload_fetch", "image_preload_report"}


def test_every_filter_is_exported_and_documented():
    assert set(FILTERS) == NAMES
    for name in NAMES:
        with open(os.path.join(DOCS, name + ".yml")) as f:
            assert yaml.safe_load(f)["DOCUMENTATION"]["name"] == name


def test_round_trip_through_the_filters():
    entries = FILTERS["image_preload_entries"]([{"path": "a.tar", "checksum": "ab" * 32, "id": "sha256:" + "1" * 64,
                                                 "refs": ["lab/a:1"]}], staging_dir="/srv/img")
    marked = FILTERS["image_preload_present"](entries, '"sha256:%s"\t["lab/a:1"]' % ("1" * 64))
    assert marked[0]["present"] is True
    report = FILTERS["image_preload_report"]({"results": []}, entries=marked)
    assert report["skipped"][0]["id"] == "sha256:" + "1" * 64 and report["changed"] is False


def test_errors_name_the_filter_and_the_variable():
    with pytest.raises(AnsibleFilterError) as exc:
        FILTERS["image_preload_entries"]([{"name": "x", "source": "nfs", "path": "/a.tar"}])
    assert str(exc.value).startswith("gpulab.provision.image_preload_entries: image_preload: image_preload_images[0] (x): ")
