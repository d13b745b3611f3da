# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_entries: the image_preload role's list of archives (what preflight.yml
computed in Jinja) and which entries are already present (present.yml), by the module's rules."""

from __future__ import annotations

import os

import pytest
import yaml

from image_archive_helpers import (  # shared with the other image_archive tests
    PASSWORD, PASSWORD_IN_URL, SECRETS, TOKEN, needs_docker, docker_import, rmi, sh,
)

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_engines as ia_engines
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_entries as ia_entries

HEX = "ab" * 32
ID = "sha256:" + "1" * 64
ROLE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "image_preload"))


def entries(images, **kw):
    kw.setdefault("staging_dir", "/var/lib/gpulab/images/")
    return ia_entries.preload_entries(images, **kw)


def problems(images, **kw):
    with pytest.raises(ValueError) as exc:
        entries(images, **kw)
    return str(exc.value)


# ---------------------------------------------------------------------------------------------
# the list
# ---------------------------------------------------------------------------------------------

def test_controller_entry_defaults():
    [e] = entries([{"path": "files/app_1.0.tar.zst", "checksum": " %s " % HEX.upper()}],
                  retag="registry.lab.internal/mirror/")
    assert e == {
        "name": "app_1.0.tar.zst", "source": "controller", "src": "files/app_1.0.tar.zst",
        "checksum": "sha256:" + HEX, "file": "app_1.0.tar.zst",
        "staged": "/var/lib/gpulab/images/app_1.0.tar.zst", "archive": "/var/lib/gpulab/images/app_1.0.tar.zst",
        "retag": "registry.lab.internal/mirror/", "allow_latest": False, "id": "", "refs": [], "size": 0,
        "from_manifest": False, "label": "app_1.0.tar.zst: files/app_1.0.tar.zst",
    }


def test_host_entry_is_read_in_place_and_own_settings_win():
    [e] = entries([{"name": "tools", "source": "host", "path": "/mnt/nfs/tools.tar", "retag": {"a/b:1": "c/d:1"},
                    "allow_latest": True}], retag="registry.lab.internal/mirror/", allow_latest=False)
    assert e["staged"] == "" and e["archive"] == "/mnt/nfs/tools.tar" and e["checksum"] == ""
    assert e["retag"] == {"a/b:1": "c/d:1"} and e["allow_latest"] is True


def test_url_entries_hold_no_credential_and_the_url_map_has_them():
    url = "https://lab:%s@files.lab/kit/web%%201.tar.gz?token=%s" % (PASSWORD_IN_URL, TOKEN)
    images = [{"source": "url", "url": url, "checksum": "sha256:" + HEX}, {"path": "a.tar", "checksum": HEX}]
    e = entries(images)[0]
    # a failed loop prints its item whole: nothing in an entry may carry a secret
    assert not any(s in repr(entries(images)) for s in SECRETS)
    assert e["src"] == "https://***@files.lab/kit/web%201.tar.gz?token=***"
    # what the download module gets (in a no_log task): the URL as given, by entry name
    assert ia_entries.source_urls(images, staging_dir="/var/lib/gpulab/images") == {"web%201.tar.gz": url}
    assert e["file"] == "web%201.tar.gz" and e["staged"] == "/var/lib/gpulab/images/web%201.tar.gz"
    assert e["label"] == "web%201.tar.gz: https://***@files.lab/kit/web%201.tar.gz?token=***"
    assert not any(s in e["label"] for s in SECRETS)


@pytest.mark.parametrize("source,base,want", [
    ("controller", "", {"path": "/kits/2026/app 1.tar"}),
    ("host", "/mnt/nfs/kit/", {"path": "/mnt/nfs/kit/app 1.tar"}),
    ("url", "http://127.0.0.1:8090/kit", {"src": "http://127.0.0.1:8090/kit/app%201.tar"}),
])
def test_kit_manifest_entries(source, base, want):
    kit = {"images": [{"name": "gpulabtest/app:1.0", "file": "app 1.tar", "sha256": "sha256:" + HEX, "id": ID,
                       "refs": ["gpulabtest/app:1.0"], "size": 4096}]}
    [e] = entries([], manifest=kit, manifest_path="/kits/2026/manifest.yml", manifest_source=source, manifest_base=base)
    assert e["src"] == want.get("path", want.get("src"))
    assert e["name"] == "gpulabtest/app:1.0" and e["from_manifest"] is True and e["source"] == source
    assert e["id"] == ID and e["refs"] == ["gpulabtest/app:1.0"] and e["size"] == 4096
    # a url's file name is the last segment of its path, as the server has it
    assert e["staged"] == {"controller": "/var/lib/gpulab/images/app 1.tar", "host": "",
                           "url": "/var/lib/gpulab/images/app%201.tar"}[source]


def test_user_entries_come_before_the_kit():
    kit = {"images": [{"file": "k.tar", "sha256": HEX}]}
    out = entries([{"path": "u.tar", "checksum": HEX}], manifest=kit, manifest_path="/kit/manifest.yml")
    assert [e["name"] for e in out] == ["u.tar", "k.tar"]


# ---------------------------------------------------------------------------------------------
# refusals: every problem at once, each naming the variable and the entry
# ---------------------------------------------------------------------------------------------

def test_every_problem_is_named():
    msg = problems([
        {"name": "a", "source": "nfs", "path": "/x.tar"},
        {"name": "b", "path": "b.tar"},
        {"name": "c", "source": "host", "path": "relative/c.tar"},
        {"name": "d", "path": "d.tar", "checksum": "md5:" + HEX},
        {"name": "e", "source": "url", "url": "ftp://files.lab/e.tar", "checksum": HEX},
        {"name": "f", "source": "url", "checksum": HEX},
        {"name": "g", "path": "g.tar", "checksum": HEX, "retag": ["x"]},
    ])
    assert msg.startswith("image_preload: ")
    for part in ("image_preload_images[0] (a): source must be one of controller, host, url, got 'nfs'",
                 "image_preload_images[1] (b): checksum (sha256:<64 hex>) is required for source controller",
                 "image_preload_images[2] (c): path must be absolute for source host, got 'relative/c.tar'",
                 "image_preload_images[3] (d): checksum: unsupported algorithm 'md5'",
                 "image_preload_images[4] (e): url must be an http:// or https:// URL",
                 "image_preload_images[5] (f): set url",
                 "image_preload_images[6] (g): retag must be a prefix string or a mapping"):
        assert part in msg, msg


def test_collisions_are_refused():
    msg = problems([{"name": "x", "path": "a/app.tar", "checksum": HEX}, {"name": "x", "path": "b/app.tar", "checksum": HEX}])
    assert "two entries are named 'x'" in msg
    assert "x and x would both be staged as /var/lib/gpulab/images/app.tar" in msg


def test_a_url_with_an_unencoded_password_is_refused_without_showing_it():
    url = "https://lab:%s@files.lab/kit/web.tar?token=%s" % (PASSWORD, TOKEN)
    msg = problems([{"name": "web", "source": "url", "url": url, "checksum": HEX}])
    assert "image_preload_images[0] (web): url does not parse" in msg
    msg = problems([{"name": "web", "source": "url", "url": url.replace(":" + PASSWORD, "/" + PASSWORD), "checksum": HEX}])
    assert "image_preload_images[0] (web): url: the user or password has an unencoded" in msg
    assert not any(s in msg for s in SECRETS)


@pytest.mark.parametrize("kw,want", [
    ({"staging_dir": "var/images"}, "image_preload_staging_dir must be an absolute path"),
    ({"manifest": ["not", "a", "kit"], "manifest_path": "/k/manifest.yml"},
     "image_preload_manifest /k/manifest.yml is not a kit manifest written by playbooks/bundle.yml"),
    ({"manifest": {"images": []}, "manifest_path": "/k/manifest.yml", "manifest_source": "host"},
     "image_preload_manifest_source is host: set image_preload_manifest_base"),
])
def test_bad_role_settings(kw, want):
    assert want in problems([], **kw)


# ---------------------------------------------------------------------------------------------
# present: the image by ID, under every name a load would give it
# ---------------------------------------------------------------------------------------------

def kit_entry(retag="", refs=("gpulabtest/app:1.0",)):
    return {"name": "app", "id": ID, "refs": list(refs), "retag": retag}


def inspect(*tags, image_id=ID):
    import json
    return "%s\t%s\n" % (json.dumps(image_id), json.dumps(list(tags)))


@pytest.mark.parametrize("retag,tags,present", [
    ("", ["gpulabtest/app:1.0"], True),
    ("", ["docker.io/gpulabtest/app:1.0"], True),           # names compared normalized
    ("", [], False),
    ("registry.lab.internal/mirror/", ["gpulabtest/app:1.0", "registry.lab.internal/mirror/gpulabtest/app:1.0"], True),
    ("registry.lab.internal/mirror", ["gpulabtest/app:1.0", "registry.lab.internal/mirror/gpulabtest/app:1.0"], True),
    ("registry.lab.internal/mirror/", ["gpulabtest/app:1.0"], False),
    ({"gpulabtest/app:1.0": "lab/app:1.0"}, ["gpulabtest/app:1.0", "lab/app:1.0"], True),
    ({ID: "lab/app:1.0"}, ["gpulabtest/app:1.0", "lab/app:1.0"], True),
    ({"gpulabtest/app:1.0": "lab/app:1.0"}, ["gpulabtest/app:1.0"], False),
    # a map key that is not this image's: the module would refuse it, so it is not "present"
    ({"other/img:2": "lab/app:1.0"}, ["gpulabtest/app:1.0", "lab/app:1.0"], False),
])
def test_present_by_the_modules_name_rules(retag, tags, present):
    [e] = ia_entries.mark_present([kit_entry(retag)], inspect(*tags))
    assert e["present"] is present


def test_uncertain_is_not_present():
    out = inspect("gpulabtest/app:1.0")
    assert not ia_entries.mark_present([kit_entry()], out, force=True)[0]["present"]
    assert not ia_entries.mark_present([kit_entry()], out, engine="containerd")[0]["present"]
    assert not ia_entries.mark_present([kit_entry(refs=())], inspect())[0]["present"]
    assert not ia_entries.mark_present([dict(kit_entry(), id="")], out)[0]["present"]
    assert not ia_entries.mark_present([kit_entry()], "")[0]["present"]
    assert not ia_entries.mark_present([kit_entry()], "Error: No such image\n")[0]["present"]
    assert not ia_entries.mark_present([kit_entry()], inspect("gpulabtest/app:1.0", image_id="sha256:" + "2" * 64))[0]["present"]


def test_the_role_asks_docker_in_the_modules_format():
    with open(os.path.join(ROLE, "tasks", "present.yml")) as f:
        task = yaml.safe_load(f)[0]
    fmt = task["vars"]["_image_preload_inspect_format"].replace("{% raw %}", "").replace("{% endraw %}", "")
    assert fmt == ia_engines.DOCKER_INSPECT_FORMAT


@needs_docker
def test_present_against_real_docker_inspect():
    ref = "gpulab-test/present-%s:1.0" % os.urandom(4).hex()
    image_id = docker_import(ref, {"a.txt": b"present\n"})
    try:
        sh("docker", "tag", ref, "registry.lab.internal/mirror/" + ref)
        p = sh("docker", "image", "inspect", "--format", ia_engines.DOCKER_INSPECT_FORMAT, image_id,
               "sha256:" + "0" * 64, check=False)
        entry = {"name": "x", "id": image_id, "refs": [ref], "retag": "registry.lab.internal/mirror/"}
        assert ia_entries.mark_present([entry], p.stdout)[0]["present"] is True
        entry["retag"] = "registry.lab.internal/other/"
        assert ia_entries.mark_present([entry], p.stdout)[0]["present"] is False
    finally:
        rmi(image_id)


# ---------------------------------------------------------------------------------------------
# what to stage: missing or wrong staged files, sized for the space check
# ---------------------------------------------------------------------------------------------

def test_fetch_list_skips_staged_files_that_match_and_sizes_the_rest():
    ok = {"name": "ok", "checksum": "sha256:" + HEX, "size": 0}
    ctl = {"name": "ctl", "checksum": "sha256:" + HEX, "size": 0}
    url = {"name": "url", "checksum": "sha256:" + HEX, "size": 777}
    wrong = {"name": "wrong", "checksum": "sha256:" + HEX, "size": 5}
    staged = {"results": [
        {"item": ok, "stat": {"exists": True, "checksum": HEX}},
        {"item": ctl, "stat": {"exists": False}},
        {"item": url, "stat": {"exists": False}},
        {"item": wrong, "stat": {"exists": True, "checksum": "cd" * 32}},
    ]}
    local = {"results": [
        {"item": {"item": ok}, "skipped": True},
        {"item": {"item": ctl}, "stat": {"exists": True, "size": 4096}},
    ]}
    out = ia_entries.fetch_list(staged, local)
    assert [(e["name"], e["fetch_size"]) for e in out] == [("ctl", 4096), ("url", 777), ("wrong", 5)]
    assert ia_entries.fetch_list({"results": []}) == []
