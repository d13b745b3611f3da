# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pinned requirements (plugins/module_utils/probe_require.py): parsing and matching, no substrings."""
from __future__ import annotations

import pytest

from mirror_feeds import feed_json as load

from ansible_collections.gpulab.provision.plugins.module_utils.probe_require import (
    RequirementError,
    conda_lists,
    dist_of,
    parse_conda,
    parse_pypi,
    pypi_lists,
    version_matches,
)

TORCH_FILES = [item["filename"] for item in load("pypi-simple-torch-2.5.pep691.json")["files"]]


@pytest.mark.parametrize("filename, expected", [
    ("torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl", ("torch", "2.5.1")),
    ("torch-2.5.1%2Bcu121-cp311-cp311-linux_x86_64.whl", ("torch", "2.5.1+cu121")),
    ("typing_extensions-4.12.2-py3-none-any.whl", ("typing-extensions", "4.12.2")),
    ("foo_bar-1.0-1-py3-none-any.whl", ("foo-bar", "1.0")),
    ("zope.interface-7.1.1.tar.gz", ("zope-interface", "7.1.1")),
    ("python-dateutil-2.9.0.post0.tar.gz", ("python-dateutil", "2.9.0.post0")),
    ("six-1.16.0.zip", ("six", "1.16.0")),
    ("README.txt", None), ("broken.whl", None), ("nodash.tar.gz", None),
])
def test_dist_of(filename, expected):
    assert dist_of(filename) == expected


@pytest.mark.parametrize("pinned, candidate, expected", [
    ("2.5.1", "2.5.1", True), ("2.5", "2.5.0", True), ("2.5.0", "2.5", True),
    ("2.5.1", "2.5.1+cu121", True), ("2.5.1+cu121", "2.5.1+cu121", True), ("2.5.1+cu121", "2.5.1+cu118", False),
    ("2.5.1", "2.5.10", False), ("2.5.1", "2.5.1.post1", False), ("1.0rc1", "1.0RC1", True),
    ("1.0.post1", "1.0-1", True), ("1!2.0", "2.0", False), ("2.1.3", "v2.1.3", True),
])
def test_version_matches_like_pep440_equality(pinned, candidate, expected):
    assert version_matches(pinned, candidate) is expected


def test_torch_pins_against_the_real_pypi_filenames():
    assert pypi_lists(TORCH_FILES, "torch", "2.5.1")
    assert pypi_lists(TORCH_FILES, "torch", "2.5.0")
    assert not pypi_lists(TORCH_FILES, "torch", "2.5.2")
    assert pypi_lists(TORCH_FILES, "torch", "2.5")  # == 2.5.0, which is listed
    assert not pypi_lists([f for f in TORCH_FILES if "-2.5.0-" not in f], "torch", "2.5")
    assert pypi_lists(TORCH_FILES, "torchvision", "2.5.1") is False


def test_another_project_with_the_same_prefix_does_not_count():
    files = ["torchvision-2.5.1-cp311-cp311-linux_x86_64.whl", "torch_audio-2.5.1.tar.gz", "torch2-2.5.1.tar.gz"]
    assert not pypi_lists(files, "torch", "2.5.1")


@pytest.mark.parametrize("item, expected", [
    ("torch==2.5.1", ("torch", "2.5.1")), ("Typing_Extensions == 4.12.2", ("typing-extensions", "4.12.2")),
    ("torch==2.5.1+cu121", ("torch", "2.5.1+cu121")),
])
def test_parse_pypi(item, expected):
    assert parse_pypi(item) == expected


@pytest.mark.parametrize("item", ["torch", "torch>=2.5", "torch==", "torch==latest", "==2.5.1", 5, "torch===2.5.1"])
def test_parse_pypi_refuses_unpinned(item):
    with pytest.raises(RequirementError, match="name==version"):
        parse_pypi(item)


def test_conda_fuzzy_and_exact():
    repodata = load("conda-pytorch-linux-64.repodata.json")
    assert parse_conda("pytorch=2.5.1") == ("pytorch", "2.5.1", False)
    assert conda_lists(repodata, *parse_conda("pytorch=2.5.1"))
    assert conda_lists(repodata, *parse_conda("pytorch=2.4"))       # 2.4 matches 2.4.1 (conda's =)
    assert not conda_lists(repodata, *parse_conda("pytorch==2.4"))  # == is exact
    assert not conda_lists(repodata, *parse_conda("pytorch=2.5.2"))
    assert not conda_lists(repodata, *parse_conda("pytorch=12.1"))  # pytorch-cuda's version is not pytorch's
    assert conda_lists(repodata, *parse_conda("pytorch-cuda=12.1"))
    assert not conda_lists(None, "pytorch", "2.5.1", False)


@pytest.mark.parametrize("item", ["pytorch", "pytorch>=2.5", "PyTorch=2.5.1", "pytorch=", 3])
def test_parse_conda_refuses_unpinned(item):
    with pytest.raises(RequirementError, match="name=version"):
        parse_conda(item)
