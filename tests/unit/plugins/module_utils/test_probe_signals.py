# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Freshness, pinned requirements and Docker pulls, end to end against servers on 127.0.0.1."""
from __future__ import annotations

import json
import re
import threading
import time

import pytest

from mirror_feeds import feed_text as feed
from mirror_servers import REGISTRY_HEADERS, StallingListener, add_image, pep503_page, pep691_json, pypi_mirror

from ansible_collections.gpulab.provision.plugins.module_utils.probe import run_probe
from ansible_collections.gpulab.provision.plugins.module_utils.probe_session import MAX_PARALLEL
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError

PIP_JSON = "application/vnd.pypi.simple.v1+json"


def mirror(name, server, path="/simple", **extra):
    return dict({"name": name, "url": server.url + path, "insecure": True}, **extra)


def by_name(out):
    return {result["name"]: result for result in out["results"]}


def http_date(epoch):
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(epoch))


# ---------------------------------------------------------------------------------- PyPI serial


def serial_mirror(servers, serial, kind="html"):
    if kind == "json":
        return pypi_mirror(servers(), body=pep691_json(serial=serial), content_type=PIP_JSON)
    if kind == "header":
        server = servers().route("/simple/pip/", 200, {"Content-Type": "text/html", "X-PyPI-Last-Serial": str(serial)},
                                 pep503_page(["pip-24.0.tar.gz"]))
        return server
    return pypi_mirror(servers(), body=pep503_page(["pip-24.0.tar.gz"], serial=serial))


def test_stale_serial_is_unhealthy_with_the_evidence(servers):
    mirrors = [mirror("fresh", serial_mirror(servers, 51990, "json")),
               mirror("stale", serial_mirror(servers, 51234, "html")),
               mirror("close", serial_mirror(servers, 51900, "header"))]
    results = by_name(run_probe("pypi", mirrors, 2.0, max_serial_lag=500))
    assert results["fresh"]["healthy"] and results["close"]["healthy"]
    assert results["stale"]["healthy"] is False
    assert results["stale"]["reason"] == "serial 51234 behind 51990 (lag 756 > 500)"
    assert [results[n]["lag"] for n in ("fresh", "stale", "close")] == [0, 756, 90]


def test_reference_sets_the_top_serial(servers):
    mirrors = [mirror("only", serial_mirror(servers, 1000)),
               mirror("pypi", serial_mirror(servers, 2000), reference=True)]
    results = by_name(run_probe("pypi", mirrors, 2.0, max_serial_lag=500))
    assert results["only"]["healthy"] is False and results["only"]["lag"] == 1000
    assert results["pypi"]["reference"] is True and results["only"]["reference"] is False


def test_no_serial_anywhere_is_freshness_unknown(servers):
    out = run_probe("pypi", [mirror("m", pypi_mirror(servers()))], 2.0, max_serial_lag=0)
    assert out["results"][0]["healthy"] is True
    assert out["results"][0]["freshness"] == "freshness unknown"


def test_bandersnatch_stamp_read_under_max_age(servers):
    now = time.time()
    old = servers().route("/web/simple/pip/", 200, {"Content-Type": "text/html"}, pep503_page(["pip-24.0.tar.gz"]))
    old.route("/web/last-modified", 200, {}, time.strftime("%Y%m%dT%H:%M:%S\n", time.gmtime(now - 50 * 3600)))
    results = by_name(run_probe("pypi", [mirror("old", old, "/web/simple")], 2.0, max_age_h=24))
    assert results["old"]["healthy"] is False
    assert results["old"]["reason"].startswith("last sync ") and results["old"]["reason"].endswith("h ago (> 24 h)")
    assert 49.9 <= results["old"]["age_h"] <= 50.1


# ---------------------------------------------------------------------------------- PyPI pins


def torch_mirror(servers, versions=("2.5.1",), delay=0.0):
    server = pypi_mirror(servers())
    files = ["torch-%s-cp311-cp311-manylinux1_x86_64.whl" % v for v in versions]
    server.route("/simple/torch/", 200, {"Content-Type": PIP_JSON}, pep691_json("torch", files), delay=delay)
    server.route("/simple/numpy/", 200, {"Content-Type": "text/html"}, pep503_page(["numpy-2.1.3.tar.gz"]),
                 delay=delay)
    return server


def test_mirror_lacking_a_pinned_version_is_unhealthy(servers):
    mirrors = [mirror("new", torch_mirror(servers, ("2.5.0", "2.5.1"))), mirror("old", torch_mirror(servers, ("2.4.1",)))]
    results = by_name(run_probe("pypi", mirrors, 2.0, require=["torch==2.5.1", "numpy==2.1.3"]))
    assert results["new"]["healthy"] is True
    assert results["old"]["healthy"] is False and results["old"]["reason"] == "lacks torch==2.5.1"


def test_missing_project_page_names_the_pin_and_the_status(servers):
    out = run_probe("pypi", [mirror("m", pypi_mirror(servers()))], 2.0, require=["Torch==2.5.1"])
    assert out["results"][0]["reason"] == "lacks torch==2.5.1 (HTTP 404 for torch)"


def test_pins_are_probed_at_once_within_the_one_deadline(servers):
    # ten pins, each answered after 0.3 s: one at a time would take 3 s, the deadline is 1.5 s
    server = pypi_mirror(servers())
    for index in range(10):
        server.route("/simple/p%d/" % index, 200, {"Content-Type": "text/html"},
                     pep503_page(["p%d-1.0.tar.gz" % index]), delay=0.3)
    started = time.monotonic()
    out = run_probe("pypi", [mirror("m", server)], 1.5, require=["p%d==1.0" % i for i in range(10)])
    assert out["results"][0]["healthy"] is True, out["results"][0]["reason"]
    assert time.monotonic() - started < 1.2


def test_a_pin_that_stalls_times_the_mirror_out_at_the_deadline(servers):
    server = pypi_mirror(servers())
    server.route("/simple/torch/", 200, {}, "", stall=True)
    started = time.monotonic()
    out = run_probe("pypi", [mirror("m", server)], 0.6, require=["torch==2.5.1"])
    assert out["results"][0]["reason"] == "timed out after 0.6 s"
    assert time.monotonic() - started < 0.9


@pytest.mark.parametrize("kind, item, message", [
    ("pypi", "torch>=2.5", "require\\[0\\]: 'torch>=2.5' is not a pinned PyPI requirement"),
    ("conda", "pytorch", "require\\[0\\]: 'pytorch' is not a pinned conda requirement"),
    ("docker", "pytorch/pytorch:latest", "never latest"),
    ("docker", "pytorch/pytorch", "never latest"),
    ("apt", "x=1", "not supported for kind apt"),
])
def test_bad_pins_are_refused_before_probing(kind, item, message):
    url = "https://r.test" if kind == "docker" else "https://r.test/x"
    with pytest.raises(ProbeSpecError, match=message):
        run_probe(kind, [{"name": "m", "url": url}], 1.0, require=[item])


def test_policy_values_are_checked():
    with pytest.raises(ProbeSpecError, match="max_serial_lag must be a number >= 0"):
        run_probe("pypi", [], 1.0, max_serial_lag=-1)


# ---------------------------------------------------------------------------------- conda


def conda_server(servers, repodata, last_modified=None, noarch=None):
    headers = {"Content-Type": "application/json"}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    server = servers().route("/pkgs/main/linux-64/repodata.json", 200, headers, repodata)
    if noarch is not None:
        server.route("/pkgs/main/noarch/repodata.json", 200, {}, noarch)
    return server


def test_conda_pins_from_subdir_or_noarch_and_last_modified_age(servers):
    repodata = feed("conda-pytorch-linux-64.repodata.json")
    noarch = json.dumps({"packages": {"six-1.16.0-0.tar.bz2": {"name": "six", "version": "1.16.0"}}})
    now = time.time()
    fresh = conda_server(servers, repodata, now - 3600, noarch)
    stale = conda_server(servers, repodata, now - 100 * 3600, noarch)
    lacking = conda_server(servers, json.dumps({"packages": {}}), now, noarch)
    mirrors = [mirror("fresh", fresh, ""), mirror("stale", stale, ""), mirror("lacking", lacking, "")]
    results = by_name(run_probe("conda", mirrors, 2.0, subdir="linux-64", require=["pytorch=2.5.1", "six==1.16.0"],
                                max_age_h=48))
    assert results["fresh"]["healthy"], results["fresh"]["reason"]
    assert 0.9 <= results["fresh"]["age_h"] <= 1.1
    assert results["stale"]["healthy"] is False and "h ago (> 48 h)" in results["stale"]["reason"]
    assert results["lacking"]["reason"] == "lacks pytorch=2.5.1 (in pkgs/main/linux-64 or pkgs/main/noarch)"


# ---------------------------------------------------------------------------------- apt


def test_apt_expired_valid_until_is_unhealthy_and_date_is_the_age(servers):
    text = feed("debian-security-bookworm.InRelease")
    now = time.time()
    current = text.replace("Wed, 25 Nov 2026 22:33:12 UTC", http_date(now - 7200)).replace(
        "Wed, 02 Dec 2026 22:33:12 UTC", http_date(now + 86400))
    expired = text.replace("Wed, 02 Dec 2026 22:33:12 UTC", http_date(now - 60))
    good = servers().route("/dists/bookworm-security/InRelease", 200, {}, current)
    late = servers().route("/dists/bookworm-security/InRelease", 200, {}, expired)
    results = by_name(run_probe("apt", [mirror("good", good, ""), mirror("late", late, "")], 2.0,
                                suite="bookworm-security"))
    assert results["good"]["healthy"] and 1.9 <= results["good"]["age_h"] <= 2.1
    assert results["late"]["healthy"] is False and results["late"]["reason"].startswith("InRelease expired ")


# ---------------------------------------------------------------------------------- status feeds


def test_status_feeds_failed_old_and_unreadable(servers):
    now = time.time()
    tuna = servers().route("/static/tunasync.json", 200, {"Content-Type": "application/json"}, feed("tunasync.json"))
    ustc = servers().route("/api/v1/metas", 200, {}, json.dumps([
        {"name": "pypi", "syncing": False, "lastSuccess": int(now - 3 * 86400)},
        {"name": "pypi-fresh", "syncing": True, "lastSuccess": int(now - 600)}]))
    mirrors = []
    for name, status_url in (("tuna-failed", tuna.url + "/static/tunasync.json#docker-ce"),
                             ("ustc-old", ustc.url + "/api/v1/metas#pypi"),
                             ("ustc-fresh", ustc.url + "/api/v1/metas#pypi-fresh"),
                             ("no-feed", ustc.url + "/missing.json#pypi")):
        mirrors.append(mirror(name, pypi_mirror(servers()), status_url=status_url))
    results = by_name(run_probe("pypi", mirrors, 2.0, max_age_h=24))
    assert results["tuna-failed"]["reason"] == "status feed: docker-ce failed (last sync failed)"
    assert results["ustc-old"]["healthy"] is False and "(> 24 h)" in results["ustc-old"]["reason"]
    assert results["ustc-fresh"]["healthy"] is True and results["ustc-fresh"]["age_h"] <= 0.2
    assert results["no-feed"]["healthy"] is True and results["no-feed"]["freshness"] == "freshness unknown"


def test_status_url_needs_the_entry_name():
    with pytest.raises(ProbeSpecError, match="needs #<name>"):
        run_probe("pypi", [{"name": "m", "url": "https://m.test/simple",
                            "status_url": "https://m.test/static/tunasync.json"}], 1.0)


# ---------------------------------------------------------------------------------- docker


def registry(servers, **image):
    server = servers().route("/v2/", 200, REGISTRY_HEADERS, "{}")
    add_image(server, "library/python", "3.11-slim", **image)
    return server


def test_docker_pull_path_blob_allowlist_and_digest_majority(servers):
    a, b = registry(servers), registry(servers, index=True)
    c = registry(servers)
    old = registry(servers, seed="old")
    allowlist = registry(servers, blob_status=403)
    gone = servers().route("/v2/", 401, REGISTRY_HEADERS, "")
    mirrors = [mirror(n, s, "") for n, s in (("a", a), ("b", b), ("c", c), ("old", old), ("allowlist", allowlist),
                                             ("gone", gone))]
    results = by_name(run_probe("docker", mirrors, 2.0, docker_image="library/python:3.11-slim"))
    assert results["a"]["healthy"] and results["c"]["healthy"], results
    # b serves an OCI index: its digest differs (index vs manifest), and it is in the minority
    assert results["b"]["healthy"] is False and results["b"]["reason"].startswith(
        "serves an old digest for library/python:3.11-slim (sha256:")
    assert results["old"]["reason"].endswith("3 of 5 mirrors have %s)" % (results["a"]["digests"]["library/python:3.11-slim"][:19] + "..."))
    assert results["allowlist"]["reason"] == ("image library/python:3.11-slim: blob refused (HTTP 403; "
                                              "the mirror serves an allowlist only?)")
    assert results["gone"]["reason"] == "image library/python:3.11-slim not found (HTTP 404)"
    blob_gets = [r for r in a.requests if "/blobs/" in r["path"]]
    assert len(blob_gets) == 1 and blob_gets[0]["headers"]["Range"] == "bytes=0-0"


def test_docker_reference_decides_the_digest(servers):
    upstream, mirror_old = registry(servers, seed="new"), registry(servers, seed="old")
    other_old = registry(servers, seed="old")
    mirrors = [mirror("old1", mirror_old, ""), mirror("old2", other_old, ""),
               mirror("hub", upstream, "", reference=True)]
    results = by_name(run_probe("docker", mirrors, 2.0, docker_image="python:3.11-slim"))
    assert results["hub"]["healthy"] is True
    assert results["old1"]["healthy"] is False and "the reference has sha256:" in results["old1"]["reason"]
    assert results["old2"]["healthy"] is False


def test_docker_required_images_at_once_with_the_index_followed_to_a_blob(servers):
    server = registry(servers, index=True)
    add_image(server, "pytorch/pytorch", "2.5.1-cuda12.1-cudnn9-runtime", index=True)
    results = by_name(run_probe("docker", [mirror("m", server, "")], 2.0, docker_image="python:3.11-slim",
                                require=["pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime", "nvidia/cuda:12.4.1-base"]))
    assert results["m"]["reason"] == "image nvidia/cuda:12.4.1-base not found (HTTP 404)"
    assert set(results["m"]["digests"]) == {"python:3.11-slim", "pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime"}


def test_twenty_mirrors_ten_pins_half_stalling_within_the_deadline(servers):
    good = pypi_mirror(servers())
    for index in range(10):
        good.route("/simple/p%d/" % index, 200, {"Content-Type": "text/html"}, pep503_page(["p%d-1.0.tar.gz" % index]))
    mirrors = []
    for index in range(20):
        server = servers(StallingListener) if index % 2 else good
        mirrors.append({"name": "m%02d" % index, "url": server.url + "/simple", "insecure": True})
    started = time.monotonic()
    out = run_probe("pypi", mirrors, 1.0, require=["p%d==1.0" % i for i in range(10)])
    assert time.monotonic() - started <= 1.2
    assert [r["healthy"] for r in out["results"]] == [index % 2 == 0 for index in range(20)]


# ------------------------------------------------------------- bounded inputs, bounded concurrency


class InFlight:
    """Counts the requests a fake mirror is answering at the same moment (each takes ``hold`` s)."""

    def __init__(self, hold=0.1):
        self.hold = hold
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def serving(self, body, content_type="text/html"):
        def handler(_request):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(self.hold)
            with self.lock:
                self.now -= 1
            return 200, {"Content-Type": content_type}, body
        return handler


def test_forty_pins_never_have_more_than_eight_requests_in_flight_and_finish_in_the_deadline(servers):
    """One thread per pin made 40 pins 40 connections to one mirror at once."""
    counter = InFlight(hold=0.1)
    server = servers()
    server.route("/simple/pip/", handler=counter.serving(pep503_page(["pip-24.0.tar.gz"])))
    server.route("/static/tunasync.json", handler=counter.serving(json.dumps(
        [{"name": "pypi", "status": "success", "last_update_ts": int(time.time())}]), "application/json"))
    for index in range(40):
        server.route("/simple/p%d/" % index, handler=counter.serving(pep503_page(["p%d-1.0.tar.gz" % index])))
    started = time.monotonic()
    out = run_probe("pypi", [mirror("m", server, status_url=server.url + "/static/tunasync.json#pypi")], 3.0,
                    require=["p%d==1.0" % i for i in range(40)])
    elapsed = time.monotonic() - started
    assert out["results"][0]["healthy"] is True, out["results"][0]["reason"]
    assert len([r for r in server.requests if re.match(r"^/simple/p\d+/$", r["path"])]) == 40
    assert MAX_PARALLEL == 8 and 2 <= counter.most <= MAX_PARALLEL  # bounded, and still at once
    assert elapsed < 3.0  # 40 x 0.1 s on 8 workers: about 0.6 s, well inside the one deadline


def test_a_pool_of_stalling_pins_still_costs_one_deadline(servers):
    server = pypi_mirror(servers())
    for index in range(20):
        server.route("/simple/p%d/" % index, 200, {}, "", stall=True)
    started = time.monotonic()
    out = run_probe("pypi", [mirror("m", server)], 0.8, require=["p%d==1.0" % i for i in range(20)])
    assert out["results"][0]["reason"] == "timed out after 0.8 s"
    assert time.monotonic() - started < 1.2
    assert len([r for r in server.requests if re.match(r"^/simple/p\d+/$", r["path"])]) <= 8  # the rest never started


@pytest.mark.parametrize("kind, item, message", [
    ("pypi", "torch==" + "1" * 5000, r"require\[0\]: 'torch==1111.*'\.\.\. is 5007 characters long; "
                                     r"a pinned item has at most 512"),
    ("pypi", "torch==" + "1" * 100, r"require\[0\]: the version of 'torch==1111.*is 100 characters long; "
                                    r"a pinned version has at most 64"),
    ("conda", "pytorch=" + "2." * 40 + "1", r"require\[0\]: the version of 'pytorch=2.2.*a pinned version has at most 64"),
    ("docker", "pytorch/pytorch:" + "a" * 600, r"require\[0\]: 'pytorch/pytorch:aaa.*\.\.\. is 616 characters long"),
])
def test_an_absurd_pin_is_refused_naming_the_item_never_an_integer_error(kind, item, message):
    url = "https://r.test" if kind == "docker" else "https://r.test/x"
    with pytest.raises(ProbeSpecError, match=message) as info:
        run_probe(kind, [{"name": "m", "url": url}], 1.0, require=[item])
    assert "4300" not in str(info.value) and len(str(info.value)) < 300


def test_more_pins_than_the_limit_are_refused():
    with pytest.raises(ProbeSpecError, match=r"^require: 65 items; a probe takes at most 64$"):
        run_probe("pypi", [{"name": "m", "url": "https://r.test/x"}], 1.0, require=["p%d==1" % i for i in range(65)])


def test_a_mirror_listing_a_file_with_a_huge_version_is_still_judged_on_the_pin(servers):
    """A file name is the mirror's to choose: a 5000-digit version in it is no version, not a crash."""
    server = pypi_mirror(servers())
    server.route("/simple/torch/", 200, {"Content-Type": "text/html"}, pep503_page(
        ["torch-%s-py3-none-any.whl" % ("9" * 5000), "torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl"]))
    out = run_probe("pypi", [mirror("m", server)], 2.0, require=["torch==2.5.1", "torch==2.5.2"])
    assert out["results"][0]["healthy"] is False and out["results"][0]["reason"] == "lacks torch==2.5.2"


@pytest.mark.parametrize("kind", ["html", "header", "json"])
def test_a_serial_of_thousands_of_digits_is_no_serial(servers, kind):
    huge = "7" * 5000
    if kind == "html":
        server = pypi_mirror(servers(), body=pep503_page(["pip-24.0.tar.gz"]) + "<!--SERIAL %s-->" % huge)
    elif kind == "header":
        server = servers().route("/simple/pip/", 200, {"Content-Type": "text/html", "X-PyPI-Last-Serial": huge},
                                 pep503_page(["pip-24.0.tar.gz"]))
    else:
        server = pypi_mirror(servers(), body=pep691_json().replace('"api-version": "1.1"', '"api-version": "1.1", '
                                                                   '"_last-serial": "%s"' % huge), content_type=PIP_JSON)
    result = run_probe("pypi", [mirror("m", server)], 2.0, max_serial_lag=10)["results"][0]
    assert result["healthy"] is True, result["reason"]
    assert result["serial"] is None and result["freshness"] == "freshness unknown"


@pytest.mark.parametrize("stamp", ["1e400", '"%s"' % ("9" * 5000), "1e20", '"9999-99-99T00:00:00Z"'])
def test_a_sync_time_past_any_calendar_is_no_signal_not_a_failed_probe(servers, stamp):
    """time.gmtime() of 1e400 raised OverflowError in judge(): the probe of every mirror of the service failed."""
    now = int(time.time())
    feed_body = '[{"name": "pypi", "status": "success", "last_update_ts": %s}]' % stamp
    site = servers().route("/static/tunasync.json", 200, {"Content-Type": "application/json"}, feed_body)
    good = servers().route("/api/v1/metas", 200, {}, json.dumps([{"name": "pypi", "lastSuccess": now - 600}]))
    conda = servers().route("/pkgs/main/noarch/repodata.json", 200, {"Last-Modified": "Sat, 09 Nov 99999 10:00:00 GMT"},
                            json.dumps({"packages": {"six-1.16.0-0.tar.bz2": {"name": "six", "version": "1.16.0"}}}))
    out = by_name(run_probe("pypi", [mirror("odd", pypi_mirror(servers()), status_url=site.url + "/static/tunasync.json#pypi"),
                                     mirror("fine", pypi_mirror(servers()), status_url=good.url + "/api/v1/metas#pypi")],
                            2.0, max_age_h=24))
    assert out["odd"]["healthy"] is True and out["odd"]["freshness"] == "freshness unknown", out["odd"]
    assert out["fine"]["healthy"] is True and out["fine"]["age_h"] <= 0.2
    year = run_probe("conda", [mirror("m", conda, "")], 2.0, max_age_h=24)["results"][0]
    assert year["healthy"] is True and year["freshness"] == "freshness unknown", year
