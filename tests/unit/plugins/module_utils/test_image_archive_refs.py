# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_refs: image references parsed and compared the way Docker does."""

from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_refs as ia_refs
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


@pytest.mark.parametrize("ref,full,familiar,latest", [
    ("ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest", True),
    ("ubuntu:20.04", "docker.io/library/ubuntu:20.04", "ubuntu:20.04", False),
    ("docker.io/library/ubuntu:20.04", "docker.io/library/ubuntu:20.04", "ubuntu:20.04", False),
    ("index.docker.io/pytorch/pytorch:2.1", "docker.io/pytorch/pytorch:2.1", "pytorch/pytorch:2.1", False),
    ("nvcr.io/nvidia/pytorch:23.10-py3", "nvcr.io/nvidia/pytorch:23.10-py3", "nvcr.io/nvidia/pytorch:23.10-py3", False),
    ("localhost:5000/lab/x:latest", "localhost:5000/lab/x:latest", "localhost:5000/lab/x:latest", True),
    ("lab/x@sha256:" + "a" * 64, "docker.io/lab/x@sha256:" + "a" * 64, "lab/x@sha256:" + "a" * 64, False),
])
def test_refs(ref, full, familiar, latest):
    assert ia_refs.normalize_ref(ref) == full
    assert ia_refs.familiar_ref(ref) == familiar
    assert ia_refs.is_latest(ref) is latest


@pytest.mark.parametrize("bad", ["", "Upper:1", "lab/Upper:1", "a b:1", "x:" + "t" * 200, "x/:1", "x:1:2"])
def test_bad_refs(bad):
    with pytest.raises(ImageArchiveError) as exc:
        ia_refs.normalize_ref(bad)
    assert exc.value.kind == "invalid"
