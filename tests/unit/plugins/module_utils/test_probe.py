# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mirror probes against real HTTP(S) servers on 127.0.0.1 (see tests/unit/mirror_servers.py)."""
from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import urllib.error

import pytest

from mirror_servers import (
    CAPTIVE_PORTAL,
    INRELEASE,
    PEP503_PIP,
    REGISTRY_HEADERS,
    REPODATA,
    StallingListener,
    add_image,
    pep503_page,
    pep691_json,
    pypi_mirror,
)

from ansible_collections.gpulab.provision.plugins.module_utils import probe as probe_mod
from ansible_collections.gpulab.provision.plugins.module_utils import probe_session
from ansible_collections.gpulab.provision.plugins.module_utils.probe import probe_url, run_probe
from ansible_collections.gpulab.provision.plugins.module_utils.probe_apt import classify_apt
from ansible_collections.gpulab.provision.plugins.module_utils.probe_conda import classify_conda
from ansible_collections.gpulab.provision.plugins.module_utils.probe_docker import (
    classify_registry,
    parse_bearer_challenge,
    parse_image_ref,
)
from ansible_collections.gpulab.provision.plugins.module_utils.probe_pypi import (
    PYPI_ACCEPT,
    classify_pypi,
    normalize_project,
)
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError, validate_mirrors
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import Response

PIP_JSON = "application/vnd.pypi.simple.v1+json"


def probe_one(kind, url, deadline=2.0, insecure=None, **options):
    """Probe a single mirror named "m"; plain http URLs are marked insecure."""
    if insecure is None:
        insecure = url.startswith("http://")
    out = run_probe(kind, [{"name": "m", "url": url, "insecure": insecure}], deadline, **options)
    assert len(out["results"]) == 1
    return out["results"][0]


def assert_healthy(result):
    assert result["healthy"], result["reason"]
    assert result["reason"] is None
    assert isinstance(result["latency_ms"], int) and result["latency_ms"] >= 0


def assert_unhealthy(result, reason):
    assert result["healthy"] is False
    assert result["latency_ms"] is None
    assert result["reason"] == reason


# ---------------------------------------------------------------------------------------- PyPI


def test_pep503_html_is_healthy(servers):
    server = pypi_mirror(servers())
    result = probe_one("pypi", server.url + "/simple")
    assert_healthy(result)
    assert result["http_status"] == 200


def test_pep691_json_is_healthy(servers):
    server = pypi_mirror(servers(), body=pep691_json(), content_type=PIP_JSON)
    assert_healthy(probe_one("pypi", server.url + "/simple"))


def test_pypi_probe_asks_for_pep691_json_first(servers):
    server = pypi_mirror(servers())
    probe_one("pypi", server.url + "/simple")
    assert server.requests[0]["headers"]["Accept"] == PYPI_ACCEPT


def test_pep691_json_without_files_is_unhealthy(servers):
    server = pypi_mirror(servers(), body=pep691_json(files=()), content_type=PIP_JSON)
    assert_unhealthy(probe_one("pypi", server.url + "/simple"), "no files listed for pip")


def test_project_name_is_normalized_in_the_request(servers):
    page = pep503_page(["typing_extensions-4.12.2-py3-none-any.whl"])
    server = pypi_mirror(servers(), body=page, project="typing-extensions")
    assert_healthy(probe_one("pypi", server.url + "/simple", project="Typing_Extensions"))
    assert server.requests[0]["path"] == "/simple/typing-extensions/"


def test_captive_portal_200_is_unhealthy(servers):
    server = pypi_mirror(servers(), body=CAPTIVE_PORTAL)
    result = probe_one("pypi", server.url + "/simple")
    assert_unhealthy(result, "not a PyPI simple page")
    assert result["http_status"] == 200


def test_simple_page_of_another_project_is_unhealthy(servers):
    server = pypi_mirror(servers(), body=pep503_page(["requests-2.32.3.tar.gz"]))
    assert_unhealthy(probe_one("pypi", server.url + "/simple"), "not a PyPI simple page")


def test_bandersnatch_serial_is_parsed(servers):
    server = pypi_mirror(servers(), body=pep503_page(["pip-24.0.tar.gz"], serial=24312345))
    result = probe_one("pypi", server.url + "/simple")
    assert_healthy(result)
    assert result["serial"] == 24312345


def test_pep691_last_serial_is_parsed(servers):
    server = pypi_mirror(servers(), body=pep691_json(serial=777), content_type=PIP_JSON)
    assert probe_one("pypi", server.url + "/simple")["serial"] == 777


def test_serial_is_null_without_a_marker(servers):
    server = pypi_mirror(servers())
    assert probe_one("pypi", server.url + "/simple")["serial"] is None


def test_404(servers):
    server = servers()  # no routes: everything is 404
    result = probe_one("pypi", server.url + "/simple")
    assert_unhealthy(result, "HTTP 404")
    assert result["http_status"] == 404


def test_500(servers):
    server = servers().route("/simple/pip/", 500, {}, "boom")
    result = probe_one("pypi", server.url + "/simple")
    assert_unhealthy(result, "HTTP 500")
    assert result["http_status"] == 500


# ------------------------------------------------------------------------ failures and deadline


def test_refused_port_is_unhealthy(refusing):
    result = probe_one("pypi", refusing.url + "/simple")
    assert_unhealthy(result, "connection refused")
    assert result["http_status"] is None


def test_unresolvable_name_is_unhealthy():
    # The test network guard fails the lookup locally, as a resolver would: no DNS query is sent.
    assert_unhealthy(probe_one("pypi", "https://mirror.invalid/simple"), "name does not resolve")


def test_accept_and_stall_times_out_within_deadline(stalling):
    started = time.monotonic()
    result = probe_one("pypi", stalling.url + "/simple", deadline=0.5)
    elapsed = time.monotonic() - started
    assert_unhealthy(result, "timed out after 0.5 s")
    assert 0.45 <= elapsed < 0.5 + 0.3


def test_slow_headers_time_out(servers):
    server = pypi_mirror(servers())
    server.routes["/simple/pip/"].delay = 5
    started = time.monotonic()
    result = probe_one("pypi", server.url + "/simple", deadline=0.5)
    assert_unhealthy(result, "timed out after 0.5 s")
    assert time.monotonic() - started < 0.8


def test_stall_in_body_times_out(servers):
    server = servers().route("/simple/pip/", 200, {"Content-Type": "text/html"}, PEP503_PIP, stall_body_after=40)
    started = time.monotonic()
    result = probe_one("pypi", server.url + "/simple", deadline=0.5)
    assert_unhealthy(result, "timed out after 0.5 s")
    assert result["http_status"] == 200  # the headers came; the body never finished
    assert time.monotonic() - started < 0.8


def test_fifty_mirrors_half_stalling_finish_within_deadline(servers):
    good = pypi_mirror(servers())
    mirrors = []
    for index in range(50):
        if index % 2:
            url = servers(StallingListener).url + "/simple"
        else:
            url = good.url + "/simple"
        mirrors.append({"name": "m%02d" % index, "url": url, "insecure": True})
    deadline = 1.0
    started = time.monotonic()
    out = run_probe("pypi", mirrors, deadline)
    elapsed = time.monotonic() - started
    assert elapsed < deadline + 0.5
    assert [r["name"] for r in out["results"]] == [m["name"] for m in mirrors]
    assert [r["healthy"] for r in out["results"]] == [index % 2 == 0 for index in range(50)]
    assert all(r["reason"] == "timed out after 1.0 s" for r in out["results"][1::2])


def test_stalled_probes_are_cut_off_at_the_deadline(servers):
    # The deadline shuts the stalled sockets down, so no probe thread lingers behind the result.
    listeners = [servers(StallingListener) for _index in range(5)]
    mirrors = [{"name": "s%d" % i, "url": s.url, "insecure": True} for i, s in enumerate(listeners)]
    run_probe("http", mirrors, 0.3)
    limit = time.monotonic() + 1.0
    while time.monotonic() < limit and any(t.name.startswith("probe-") for t in threading.enumerate()):
        time.sleep(0.02)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("probe-")]


def test_results_keep_input_order_and_report_elapsed_and_timeout(servers, refusing):
    good = pypi_mirror(servers())
    mirrors = [
        {"name": "refusing", "url": refusing.url + "/simple", "insecure": True},
        {"name": "good", "url": good.url + "/simple", "insecure": True},
    ]
    out = run_probe("pypi", mirrors, 2.0)
    assert [r["name"] for r in out["results"]] == ["refusing", "good"]
    assert out["timeout"] == 2.0
    assert isinstance(out["elapsed_ms"], int) and out["elapsed_ms"] < 2000
    assert set(out["results"][0]) == {"name", "url", "healthy", "latency_ms", "http_status", "reason", "serial",
                                      "lag", "age_h", "freshness", "digests", "reference"}


def test_run_probe_returns_early_when_all_mirrors_answer(servers):
    server = pypi_mirror(servers())
    started = time.monotonic()
    run_probe("pypi", [{"name": "m", "url": server.url + "/simple", "insecure": True}], 5.0)
    assert time.monotonic() - started < 1.0


# ------------------------------------------------------------------------------------ redirects


def test_redirect_to_healthy_page_is_healthy(servers):
    server = pypi_mirror(servers(), prefix="/new")
    server.route("/simple/pip/", 301, {"Location": "/new/pip/"})
    result = probe_one("pypi", server.url + "/simple")
    assert_healthy(result)
    assert result["http_status"] == 200


def test_redirect_loop(servers):
    server = servers()
    server.route("/simple/pip/", 302, {"Location": "/a/"})
    server.route("/a/", 302, {"Location": "/simple/pip/"})
    result = probe_one("pypi", server.url + "/simple")
    assert_unhealthy(result, "redirect loop")
    assert result["http_status"] == 302


def test_too_many_redirects_is_a_redirect_loop(servers):
    server = servers()
    server.route("/simple/pip/", 302, {"Location": "/r1"})
    for hop in range(1, 8):
        server.route("/r%d" % hop, 302, {"Location": "/r%d" % (hop + 1)})
    result = probe_one("pypi", server.url + "/simple")
    assert result["healthy"] is False
    assert result["reason"].startswith("redirect loop")


def test_five_redirects_are_followed(servers):
    server = pypi_mirror(servers(), prefix="/r5")
    server.route("/simple/pip/", 302, {"Location": "/r1"})
    for hop in range(1, 5):
        server.route("/r%d" % hop, 302, {"Location": "/r%d" % (hop + 1)})
    server.route("/r5", 302, {"Location": "/r5/pip/"})
    assert probe_one("pypi", server.url + "/simple")["reason"].startswith("redirect loop")
    server.route("/r4", 302, {"Location": "/r5/pip/"})
    assert_healthy(probe_one("pypi", server.url + "/simple"))


def test_credentials_are_sent_as_basic_auth_to_the_mirror(servers):
    server = pypi_mirror(servers())
    assert_healthy(probe_one("pypi", "http://user:pw@127.0.0.1:%d/simple" % server.port))
    assert server.requests[0]["headers"]["Authorization"] == "Basic dXNlcjpwdw=="


def test_credentials_are_not_sent_to_another_host_on_redirect(servers):
    other = pypi_mirror(servers(host="127.0.0.2"))
    server = servers().route("/simple/pip/", 302, {"Location": other.url + "/simple/pip/"})
    assert_healthy(probe_one("pypi", "http://user:pw@127.0.0.1:%d/simple" % server.port))
    assert "Authorization" in server.requests[0]["headers"]
    assert "Authorization" not in other.requests[0]["headers"]


def test_https_to_http_redirect_is_refused_without_insecure(servers, tls_context, ca_bundle):
    plain = pypi_mirror(servers())
    secure = servers(tls=tls_context).route("/simple/pip/", 302, {"Location": plain.url + "/simple/pip/"})
    result = probe_one("pypi", secure.url + "/simple", ca_path=ca_bundle)
    assert result["healthy"] is False
    assert "plain http" in result["reason"]
    assert plain.requests == []


# ------------------------------------------------------------------------------------------ TLS


def test_untrusted_certificate_is_rejected(servers, tls_context):
    server = pypi_mirror(servers(tls=tls_context))
    result = probe_one("pypi", server.url + "/simple")
    assert result["healthy"] is False
    assert result["reason"].startswith("certificate verify failed")


def test_ca_path_from_test_ca_is_trusted(servers, tls_context, ca_bundle):
    server = pypi_mirror(servers(tls=tls_context))
    assert_healthy(probe_one("pypi", server.url + "/simple", ca_path=ca_bundle))


def test_insecure_mirror_skips_certificate_verification(servers, tls_context):
    server = pypi_mirror(servers(tls=tls_context))
    assert_healthy(probe_one("pypi", server.url + "/simple", insecure=True))


def test_validate_certs_false_skips_certificate_verification(servers, tls_context):
    server = pypi_mirror(servers(tls=tls_context))
    assert_healthy(probe_one("pypi", server.url + "/simple", validate_certs=False))


def test_insecure_mirror_does_not_relax_tls_for_the_others(servers, tls_context):
    # ansible's Request.open installs its opener process-wide; probes in parallel must not share it.
    server = pypi_mirror(servers(tls=tls_context))
    mirrors = []
    for index in range(20):
        mirrors.append({"name": "lax%d" % index, "url": server.url + "/simple", "insecure": True})
        mirrors.append({"name": "strict%d" % index, "url": server.url + "/simple"})
    results = run_probe("pypi", mirrors, 3.0)["results"]
    assert all(r["healthy"] for r in results if r["name"].startswith("lax"))
    assert not any(r["healthy"] for r in results if r["name"].startswith("strict"))


def test_unreadable_ca_path_is_an_input_error(servers, tls_context, tmp_path):
    server = pypi_mirror(servers(tls=tls_context))
    with pytest.raises(ProbeSpecError, match="ca_path"):
        probe_one("pypi", server.url + "/simple", ca_path=str(tmp_path / "missing.pem"))


# ---------------------------------------------------------------------------------- credentials


def test_credentials_masked_in_every_field(servers, refusing, stalling, tls_context):
    not_found = servers()
    tls = pypi_mirror(servers(tls=tls_context))
    secrets = ("hunter22", "t0k3nvalue", "alice")  # a ?token= is refused before any probe (next test)
    mirrors = [
        {"name": "refused", "url": "http://alice:hunter22t0k3nvalue@127.0.0.1:%d/simple" % refusing.port,
         "insecure": True},
        {"name": "stalled", "url": "http://alice:hunter22t0k3nvalue@127.0.0.1:%d/simple" % stalling.port,
         "insecure": True},
        {"name": "missing", "url": "http://alice:hunter22t0k3nvalue@127.0.0.1:%d/simple" % not_found.port,
         "insecure": True},
        {"name": "untrusted", "url": "https://alice:hunter22t0k3nvalue@127.0.0.1:%d/simple" % tls.port},
        {"name": "unresolvable", "url": "https://alice:hunter22@mirror.invalid/simple"},
        {"name": "badport", "url": "https://alice:hunter22t0k3nvalue@127.0.0.1:0/simple"},
    ]
    out = run_probe("pypi", mirrors, 0.7)
    dumped = json.dumps(out)
    for secret in secrets:
        assert secret not in dumped
    assert all(not r["healthy"] for r in out["results"])
    assert out["results"][0]["url"] == "http://***@127.0.0.1:%d/simple" % refusing.port


def test_validation_errors_never_show_credentials():
    with pytest.raises(ProbeSpecError) as err:
        validate_mirrors("pypi", [{"name": "m", "url": "https://alice:hunter22@h/simple?token=t0k3n"}])
    assert "hunter22" not in str(err.value) and "t0k3n" not in str(err.value)
    assert "***@h" in str(err.value)
    assert "query string" in str(err.value)


# --------------------------------------------------------------------------------------- docker


def test_docker_v2_401_with_header_is_healthy(servers):
    server = servers().route("/v2/", 401, dict(REGISTRY_HEADERS, **{"WWW-Authenticate": 'Bearer realm="x"'}))
    result = probe_one("docker", server.url)
    assert_healthy(result)
    assert result["http_status"] == 401


def test_docker_v2_200_with_header_is_healthy(servers):
    server = servers().route("/v2/", 200, REGISTRY_HEADERS, "{}")
    assert_healthy(probe_one("docker", server.url))


def test_web_server_200_without_header_is_unhealthy(servers):
    server = servers().route("/v2/", 200, {"Content-Type": "text/html"}, "<html>welcome</html>")
    assert_unhealthy(probe_one("docker", server.url),
                     "not a registry (no Docker-Distribution-API-Version header)")


def test_docker_v2_404_is_unhealthy(servers):
    assert_unhealthy(probe_one("docker", servers().url), "HTTP 404")


def _registry_with_token_flow(servers, manifest_status=200, token_status=200):
    """A registry whose manifests need a Bearer token from a token service on another address."""
    issued = "tok-" + "x" * 20
    auth = servers(host="127.0.0.3")

    def token(handler):
        if token_status != 200:
            return token_status, {}, "no"
        return 200, {"Content-Type": "application/json"}, json.dumps({"token": issued, "expires_in": 300})

    auth.route("/token", handler=token)
    registry = servers()
    challenge = 'Bearer realm="%s/token",service="registry.test",scope="repository:library/hello-world:pull"' % (
        auth.url)
    registry.route("/v2/", 401, dict(REGISTRY_HEADERS, **{"WWW-Authenticate": 'Bearer realm="%s/token"' % auth.url}))

    add_image(registry, "library/hello-world", "latest", token=issued, challenge=challenge)
    if manifest_status != 200:
        def manifest(handler):
            if handler.headers.get("Authorization") != "Bearer " + issued:
                return 401, dict(REGISTRY_HEADERS, **{"WWW-Authenticate": challenge}), ""
            return manifest_status, dict(REGISTRY_HEADERS, **{"Docker-Content-Digest": "sha256:" + "0" * 64}), ""

        registry.route("/v2/library/hello-world/manifests/latest", handler=manifest)
    return registry, auth, issued


def test_docker_manifest_head_follows_bearer_token_flow(servers):
    registry, auth, issued = _registry_with_token_flow(servers)
    result = probe_one("docker", registry.url, docker_image="hello-world")
    assert_healthy(result)
    assert result["http_status"] == 200
    token_request = auth.requests[0]
    assert token_request["path"] == "/token?service=registry.test&scope=repository%3Alibrary%2Fhello-world%3Apull"
    heads = [r for r in registry.requests if r["method"] == "HEAD"]
    assert [r["headers"].get("Authorization") for r in heads] == [None, "Bearer " + issued]
    assert "application/vnd.oci.image.index.v1+json" in heads[0]["headers"]["Accept"]


def test_docker_manifest_missing_is_unhealthy(servers):
    registry, _auth, _issued = _registry_with_token_flow(servers, manifest_status=404)
    result = probe_one("docker", registry.url, docker_image="library/hello-world:latest")
    assert_unhealthy(result, "image library/hello-world:latest not found (HTTP 404)")


def test_docker_token_endpoint_failure_is_unhealthy(servers):
    registry, _auth, _issued = _registry_with_token_flow(servers, token_status=503)
    assert_unhealthy(probe_one("docker", registry.url, docker_image="hello-world"), "token endpoint: HTTP 503")


def test_docker_manifest_without_auth_is_healthy(servers):
    registry = servers().route("/v2/", 200, REGISTRY_HEADERS, "{}")
    add_image(registry, "library/busybox", "1.36")
    assert_healthy(probe_one("docker", registry.url, docker_image="busybox:1.36"))


def test_docker_token_realm_over_plain_http_needs_insecure(servers, tls_context, ca_bundle):
    auth = servers(host="127.0.0.3").route("/token", 200, {}, '{"token": "t"}')
    registry = servers(tls=tls_context).route("/v2/", 200, REGISTRY_HEADERS, "{}")
    registry.route("/v2/library/hello-world/manifests/latest", 401,
                   dict(REGISTRY_HEADERS, **{"WWW-Authenticate": 'Bearer realm="%s/token"' % auth.url}), "")
    result = probe_one("docker", registry.url, docker_image="hello-world", ca_path=ca_bundle)
    assert result["healthy"] is False and "plain http" in result["reason"]
    assert auth.requests == []


# ---------------------------------------------------------------------------------------- conda


def test_conda_repodata_is_healthy(servers):
    server = servers().route("/pkgs/main/noarch/repodata.json", 200, {"Content-Type": "application/json"}, REPODATA)
    assert_healthy(probe_one("conda", server.url))


def test_conda_channel_and_subdir_build_the_path(servers):
    server = servers().route("/cloud/conda-forge/linux-64/repodata.json", 200, {}, REPODATA)
    assert_healthy(probe_one("conda", server.url + "/", channel="cloud/conda-forge", subdir="linux-64"))


def test_conda_repodata_that_does_not_parse_is_unhealthy(servers):
    server = servers().route("/pkgs/main/noarch/repodata.json", 200, {}, '{"packages": {"a": ')
    assert_unhealthy(probe_one("conda", server.url), "repodata does not parse")


def test_conda_repodata_without_packages_is_unhealthy(servers):
    server = servers().route("/pkgs/main/noarch/repodata.json", 200, {}, '{"info": {}}')
    assert_unhealthy(probe_one("conda", server.url), "repodata has no packages")


def test_conda_repodata_over_the_cap_is_unhealthy(servers, monkeypatch):
    monkeypatch.setattr(probe_session, "MAX_BODY_BYTES", 1024)
    big = json.dumps({"packages": {"p%05d" % i: {} for i in range(200)}})
    server = servers().route("/pkgs/main/noarch/repodata.json", 200, {}, big)
    assert_unhealthy(probe_one("conda", server.url), "repodata larger than 1024 bytes")


def test_conda_gzip_repodata_is_decoded(servers):
    server = servers().route("/pkgs/main/noarch/repodata.json", 200, {"Content-Encoding": "gzip"},
                             gzip.compress(REPODATA.encode()))
    assert_healthy(probe_one("conda", server.url))
    assert server.requests[0]["headers"]["Accept-Encoding"] == "gzip"


def test_conda_gzip_bomb_stops_at_the_cap(servers, monkeypatch):
    monkeypatch.setattr(probe_session, "MAX_BODY_BYTES", 64 * 1024)
    bomb = gzip.compress(b" " * (8 * 1024 * 1024))
    server = servers().route("/pkgs/main/noarch/repodata.json", 200, {"Content-Encoding": "gzip"}, bomb)
    assert_unhealthy(probe_one("conda", server.url), "repodata larger than 65536 bytes")


# ------------------------------------------------------------------------------------------ apt


def test_apt_inrelease_is_healthy(servers):
    server = servers().route("/debian/dists/bookworm/InRelease", 200, {}, INRELEASE)
    assert_healthy(probe_one("apt", server.url + "/debian"))


def test_apt_flat_repository_reads_inrelease_at_its_root(servers):
    server = servers().route("/cuda/InRelease", 200, {}, INRELEASE)
    assert_healthy(probe_one("apt", server.url + "/cuda", suite="/"))


def test_apt_unsigned_release_is_unhealthy(servers):
    server = servers().route("/dists/bookworm/InRelease", 200, {}, "Suite: stable\nCodename: bookworm\n")
    assert_unhealthy(probe_one("apt", server.url), "not a signed InRelease file")


def test_apt_inrelease_without_fields_is_unhealthy(servers):
    body = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nhello\n-----BEGIN PGP SIGNATURE-----\n"
    server = servers().route("/dists/bookworm/InRelease", 200, {}, body)
    assert_unhealthy(probe_one("apt", server.url), "InRelease has no Suite, Codename or Date field")


# ----------------------------------------------------------------------------------------- http


def test_http_kind_any_2xx_is_healthy(servers):
    server = servers().route("/health", 204, {}, "")
    assert_healthy(probe_one("http", server.url, path="/health"))


def test_http_kind_large_body_is_healthy(servers, monkeypatch):
    monkeypatch.setattr(probe_session, "MAX_BODY_BYTES", 1024)
    server = servers().route("/big.iso", 200, {}, b"x" * 100000)
    assert_healthy(probe_one("http", server.url, path="big.iso"))


def test_http_kind_stall_in_body_times_out(servers):
    server = servers().route("/file", 200, {}, b"x" * 1000, stall_body_after=10)
    assert_unhealthy(probe_one("http", server.url, path="file", deadline=0.5), "timed out after 0.5 s")


def test_http_kind_non_2xx_is_unhealthy(servers):
    server = servers().route("/health", 503, {}, "")
    assert_unhealthy(probe_one("http", server.url, path="health"), "HTTP 503")


# ----------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("url", ["file:///srv/pypi/simple", "ftp://127.0.0.1/pub/simple"])
def test_non_http_url_is_rejected(url):
    with pytest.raises(ProbeSpecError, match="scheme must be http or https"):
        run_probe("pypi", [{"name": "m", "url": url, "insecure": True}], 1.0)


def test_duplicate_names_are_rejected():
    mirrors = [{"name": "m", "url": "https://a.test/simple"}, {"name": "m", "url": "https://b.test/simple"}]
    with pytest.raises(ProbeSpecError, match="duplicate mirror name 'm'"):
        run_probe("pypi", mirrors, 1.0)


def test_plain_http_without_insecure_is_rejected():
    with pytest.raises(ProbeSpecError, match="use https, or set insecure: true"):
        run_probe("pypi", [{"name": "m", "url": "http://127.0.0.1:9/simple"}], 1.0)


def test_docker_url_with_path_is_rejected():
    with pytest.raises(ProbeSpecError, match=r"scheme://host\[:port\]"):
        run_probe("docker", [{"name": "m", "url": "https://registry.test/v2"}], 1.0)


@pytest.mark.parametrize("item, message", [
    ({"url": "https://a.test/simple"}, "name is missing"),
    ({"name": "m"}, "url is missing"),
    ({"name": "m", "url": ""}, "url is missing"),
    ("https://a.test/simple", "must be a dict"),
])
def test_incomplete_mirror_is_rejected(item, message):
    with pytest.raises(ProbeSpecError, match=message):
        validate_mirrors("pypi", [item])


def test_unknown_kind_is_rejected():
    with pytest.raises(ProbeSpecError, match="kind must be one of"):
        validate_mirrors("npm", [])


@pytest.mark.parametrize("deadline", [0, -1, "soon"])
def test_bad_timeout_is_rejected(deadline):
    with pytest.raises(ProbeSpecError, match="timeout"):
        run_probe("pypi", [], deadline)


def test_bad_docker_image_is_rejected():
    with pytest.raises(ProbeSpecError, match="docker_image"):
        run_probe("docker", [{"name": "m", "url": "https://r.test"}], 1.0, docker_image="Bad Image!")


def test_empty_mirror_list_gives_empty_results():
    out = run_probe("pypi", [], 1.0)
    assert out["results"] == []


# ------------------------------------------------------------------------ pure helpers, opener


def test_injected_opener_is_used():
    class FakeOpener:
        def __init__(self):
            self.calls = []

        def open(self, method, url, headers, timeout, insecure, connections):
            self.calls.append((method, url, timeout <= 1.0))
            raise urllib.error.URLError(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))

    opener = FakeOpener()
    out = run_probe("pypi", [{"name": "m", "url": "https://pypi.test/simple"}], 1.0, opener=opener)
    assert opener.calls == [("GET", "https://pypi.test/simple/pip/", True)]
    assert out["results"][0]["reason"] == "name does not resolve"


def test_fake_opener_response_is_classified():
    class Body:
        def __init__(self, data):
            self.data = data

        def read(self, size):
            data, self.data = self.data[:size], self.data[size:]
            return data

        def close(self):
            pass

    class FakeOpener:
        def open(self, method, url, headers, timeout, insecure, connections):
            return Response(200, {"Content-Type": "text/html"}, Body(PEP503_PIP.encode()))

    out = run_probe("pypi", [{"name": "m", "url": "https://pypi.test/simple"}], 1.0, opener=FakeOpener())
    assert out["results"][0]["healthy"] is True


@pytest.mark.parametrize("name, normalized", [("Pip", "pip"), ("zope.interface", "zope-interface"),
                                              ("typing__Extensions", "typing-extensions")])
def test_normalize_project(name, normalized):
    assert normalize_project(name) == normalized


@pytest.mark.parametrize("kind, options, expected", [
    ("pypi", {}, "https://m.test/simple/pip/"),
    ("conda", {}, "https://m.test/simple/pkgs/main/noarch/repodata.json"),
    ("apt", {}, "https://m.test/simple/dists/bookworm/InRelease"),
    ("apt", {"suite": "/"}, "https://m.test/simple/InRelease"),
    ("apt", {"suite": "./"}, "https://m.test/simple/InRelease"),
    ("apt", {"suite": "sub/"}, "https://m.test/simple/sub/InRelease"),
    ("http", {"path": "/ping"}, "https://m.test/simple/ping"),
    ("http", {}, "https://m.test/simple"),
])
def test_probe_url(kind, options, expected):
    opts = dict(probe_mod.DEFAULT_OPTIONS, **options)
    assert probe_url(kind, "https://m.test/simple", opts) == expected


@pytest.mark.parametrize("image, expected", [
    ("hello-world", ("library/hello-world", "latest")),
    ("library/hello-world:latest", ("library/hello-world", "latest")),
    ("docker.io/nvidia/cuda:12.4.1-base-ubuntu22.04", ("nvidia/cuda", "12.4.1-base-ubuntu22.04")),
    ("busybox@sha256:" + "a" * 64, ("library/busybox", "sha256:" + "a" * 64)),
])
def test_parse_image_ref(image, expected):
    assert parse_image_ref(image) == expected


def test_parse_bearer_challenge():
    value = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull"'
    assert parse_bearer_challenge(value) == {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:a/b:pull"}
    assert parse_bearer_challenge('Basic realm="x"') is None


def test_classifiers_accept_plain_dict_headers_in_any_case():
    assert classify_registry(401, {"docker-distribution-api-version": "registry/2.0"}).healthy
    assert classify_pypi(200, {"content-type": PIP_JSON}, pep691_json().encode()).healthy
    assert classify_conda(200, {}, REPODATA.encode()).healthy
    assert classify_apt(200, {}, INRELEASE.encode()).healthy


def test_pypi_header_serial_is_a_fallback():
    verdict = classify_pypi(200, {"X-PyPI-Last-Serial": "42"}, PEP503_PIP.encode())
    assert verdict.healthy and verdict.serial == 42
