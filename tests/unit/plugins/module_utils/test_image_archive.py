# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive: preload(), the whole job, with a fake engine: check mode, cache, direct and streamed loads, space."""

from __future__ import annotations

import io
import os

import pytest

from image_archive_helpers import sha, build_archive  # shared with the other image_archive tests

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive as ia
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_manifest as ia_manifest
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_refs as ia_refs
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


class FakeEngine(object):
    name = "fake"

    def __init__(self, staging):
        self.ids = set()
        self.refs = {}
        self.loads = 0
        self.tags = []
        self.staging = staging

    def query(self, images, refs):
        return set(i["id"] for i in images) & self.ids, dict((k, set(v)) for k, v in self.refs.items())

    def default_staging_dir(self):
        return self.staging

    def can_load(self, info):
        return None

    def load_argv(self, path=None):
        return ["fake-load"] + ([path] if path else [])

    def run(self, argv):
        # the direct load: the engine reads the file itself
        assert argv[0] == "fake-load" and os.path.isfile(argv[1])
        self.loads += 1
        self.direct = argv[1]
        for img in ia_manifest.scan_archive(argv[1])["images"]:
            self.ids.add(img["id"])
            for t in img["tags"]:
                self.refs.setdefault(ia_refs.normalize_ref(t), set()).add(img["id"])
        return 0, "", ""

    def tag(self, image_id, ref, source_ref=None):
        self.tags.append(ref)
        self.refs.setdefault(ia_refs.normalize_ref(ref), set()).add(image_id)


def fake_sink_factory(engine, images):
    class Sink(object):
        def __init__(self, argv, label=None):
            self.data = io.BytesIO()

        def write(self, d):
            self.data.write(d)

        def commit(self):
            engine.loads += 1
            for img in images:
                engine.ids.add(img["id"])
                for t in img["tags"]:
                    engine.refs.setdefault(ia_refs.normalize_ref(t), set()).add(img["id"])
            return ""

        def abort(self):
            pass

        def close(self):
            pass
    return Sink


def test_preload_with_cache(tmp_path):
    path = str(tmp_path / "a.tar")
    image_id = build_archive(path, tags=["lab/a:1.0"], payload=os.urandom(5000))
    digest = sha(open(path, "rb").read())
    engine = FakeEngine(str(tmp_path))
    images = ia_manifest.scan_archive(path)["images"]
    factory = fake_sink_factory(engine, images)
    cache = str(tmp_path / "cache")
    kw = dict(checksum="sha256:" + digest, cache_dir=cache, sink_factory=factory, retag={"lab/a:1.0": "lab/b:1.0"})

    r = ia.preload(path, engine, check_mode=True, **kw)
    assert r["changed"] and r["images"][0]["action"] == "would_load" and engine.loads == 0
    assert r["images"][0]["retagged"] == ["lab/b:1.0"] and engine.tags == []
    assert not os.path.exists(cache)          # check mode writes nothing

    r = ia.preload(path, engine, **kw)
    assert r["changed"] and r["loaded"] == 1 and engine.loads == 1
    assert r["images"][0] == {"id": image_id, "tags": ["lab/a:1.0"], "action": "loaded", "retagged": ["lab/b:1.0"]}
    assert r["archive"]["sha256"] == "sha256:" + digest and not r["archive"]["from_cache"]

    assert r["load_mode"] == "stream"

    r = ia.preload(path, engine, **kw)
    assert not r["changed"] and r["skipped_count"] == 1 and r["bytes_read"] == 0 and r["archive"]["from_cache"]
    assert r["load_mode"] is None

    # image removed: the cache vouches for the checksum, so the engine reads the file by path
    engine.ids.clear()
    engine.refs.clear()
    r = ia.preload(path, engine, **kw)
    assert r["changed"] and r["load_mode"] == "direct" and engine.loads == 2 and r["bytes_read"] == 0
    assert r["images"][0]["retagged"] == ["lab/b:1.0"]

    # the cache never hides a changed file
    os.utime(path, None)
    engine.ids.clear()
    engine.refs.clear()
    r = ia.preload(path, engine, **kw)
    assert r["changed"] and r["load_mode"] == "stream" and engine.loads == 3
    os.utime(path, None)
    with pytest.raises(ImageArchiveError) as exc:
        bad = dict(kw)
        bad["checksum"] = "0" * 64
        ia.preload(path, engine, **bad)
    assert exc.value.kind == "checksum"
    r = ia.preload(path, engine, **kw)
    assert not r["changed"] and r["bytes_read"] > 0 and not r["archive"]["from_cache"]


def test_preload_space_check_happens_before_any_load(tmp_path):
    path = str(tmp_path / "a.tar")
    build_archive(path, tags=["lab/a:1.0"])
    engine = FakeEngine(str(tmp_path))
    factory = fake_sink_factory(engine, ia_manifest.scan_archive(path)["images"])
    with pytest.raises(ImageArchiveError) as exc:
        ia.preload(path, engine, min_free_bytes=1 << 60, sink_factory=factory)
    e = exc.value
    assert e.kind == "space" and engine.loads == 0
    assert "not enough free space in %s" % tmp_path in str(e)
    assert e.details["needed"] > e.details["available"]
    assert "need %d bytes" % e.details["needed"] in str(e) and "available %d" % e.details["available"] in str(e)
