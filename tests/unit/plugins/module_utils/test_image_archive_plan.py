# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_plan: names (retag map, prefix), the :latest policy and the per-image plan."""

from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_plan as ia_plan
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_refs as ia_refs
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


IMG = {"id": "sha256:" + "1" * 64, "tags": ["pytorch/pytorch:2.1-cuda12.1"], "digests": []}
UNTAGGED = {"id": "sha256:" + "2" * 64, "tags": [], "digests": []}


def test_latest_refused_and_allowed():
    latest = {"id": "sha256:" + "3" * 64, "tags": ["lab/x:latest"], "digests": []}
    for images, targets in (([latest], {}), ([IMG], {IMG["id"]: ["lab/pytorch"]}), ([UNTAGGED], {})):
        with pytest.raises(ImageArchiveError) as exc:
            ia_plan.check_latest(images, targets, allow_latest=False)
        assert exc.value.kind == "latest"
        assert "pytorch-2.1-cuda12.1-ubuntu20.04" in str(exc.value)
        assert "allow_latest" in str(exc.value)
        ia_plan.check_latest(images, targets, allow_latest=True)
    ia_plan.check_latest([IMG], {IMG["id"]: ["lab/pytorch:2.1"]}, allow_latest=False)
    # an untagged image named through retag is fine
    ia_plan.check_latest([UNTAGGED], {UNTAGGED["id"]: ["lab/unnamed:1"]}, allow_latest=False)


def test_retag_mapping_and_prefix():
    images = [IMG, UNTAGGED]
    t = ia_plan.retag_targets(images, retag={"docker.io/pytorch/pytorch:2.1-cuda12.1": "lab/pytorch:2.1",
                                             "222222222222": "lab/unnamed:1"})
    assert t == {IMG["id"]: ["lab/pytorch:2.1"], UNTAGGED["id"]: ["lab/unnamed:1"]}
    t = ia_plan.retag_targets(images, prefix="registry.lab.internal/mirror")
    assert t == {IMG["id"]: ["registry.lab.internal/mirror/pytorch/pytorch:2.1-cuda12.1"], UNTAGGED["id"]: []}
    with pytest.raises(ImageArchiveError) as exc:
        ia_plan.retag_targets(images, retag={"nothere:1": "lab/x:1"})
    assert exc.value.kind == "invalid" and "nothere:1" in str(exc.value)
    for bad in ("Bad Name", "lab/x@sha256:" + "a" * 64):
        with pytest.raises(ImageArchiveError) as exc:
            ia_plan.retag_targets(images, retag={"pytorch/pytorch:2.1-cuda12.1": bad})
        assert exc.value.kind == "invalid"


def test_plan():
    tag = ia_refs.normalize_ref(IMG["tags"][0])
    targets = {IMG["id"]: ["lab/pytorch:2.1"]}
    # absent: load, then tag the extra name
    steps = ia_plan.plan([IMG], targets, set(), {})
    assert steps == [{"id": IMG["id"], "tags": IMG["tags"], "load": True, "tag": ["lab/pytorch:2.1"]}]
    # present with every tag: nothing to do
    full = {tag: {IMG["id"]}, "docker.io/lab/pytorch:2.1": {IMG["id"]}}
    steps = ia_plan.plan([IMG], targets, {IMG["id"]}, full)
    assert steps[0]["load"] is False and steps[0]["tag"] == []
    # present but the archive's tag moved elsewhere: retag, no reload
    steps = ia_plan.plan([IMG], targets, {IMG["id"]}, {tag: {"sha256:other"}, "docker.io/lab/pytorch:2.1": {IMG["id"]}})
    assert steps[0]["load"] is False and steps[0]["tag"] == IMG["tags"]
    # force reloads
    assert ia_plan.plan([IMG], targets, {IMG["id"]}, full, force=True)[0]["load"] is True
