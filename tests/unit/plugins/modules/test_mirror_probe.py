# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror_probe module end to end through main(), against servers on 127.0.0.1."""
from __future__ import annotations

import json

import pytest
import yaml

from mirror_servers import pypi_mirror

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpulab.provision.plugins.modules import mirror_probe

SECRET = "hunter22-s3cr3t"
TOKEN = "t0k3n-value-xyz"


def run_module(capsys, args, check_mode=False):
    """Run main() with ``args``; return (failed, parsed JSON result)."""
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            mirror_probe.main()
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    return exit_info.value.code != 0, result, out


def test_module_returns_results_elapsed_and_timeout(servers, refusing, capsys):
    good = pypi_mirror(servers())
    failed, result, _out = run_module(capsys, {
        "kind": "pypi",
        "mirrors": [
            {"name": "good", "url": good.url + "/simple", "insecure": True},
            {"name": "down", "url": refusing.url + "/simple", "insecure": True},
        ],
        "timeout": 2,
    })
    assert not failed
    assert result["changed"] is False
    assert result["timeout"] == 2.0
    assert isinstance(result["elapsed_ms"], int)
    good_result, down_result = result["results"]
    assert good_result == {"name": "good", "url": good.url + "/simple", "healthy": True,
                           "latency_ms": good_result["latency_ms"], "http_status": 200, "reason": None,
                           "serial": None, "lag": None, "age_h": None, "freshness": "freshness unknown",
                           "digests": None, "reference": False}
    assert isinstance(good_result["latency_ms"], int)
    assert down_result["healthy"] is False and down_result["reason"] == "connection refused"


def test_module_check_mode_probes_and_reports_no_change(servers, capsys):
    good = pypi_mirror(servers())
    failed, result, _out = run_module(capsys, {
        "kind": "pypi",
        "mirrors": [{"name": "good", "url": good.url + "/simple", "insecure": True}],
    }, check_mode=True)
    assert not failed
    assert result["changed"] is False
    assert result["results"][0]["healthy"] is True
    assert len(good.requests) == 1  # read-only, so check mode probes for real


def test_module_output_never_contains_credentials(servers, refusing, capsys):
    good = pypi_mirror(servers())
    failed, result, out = run_module(capsys, {
        "kind": "pypi",
        "mirrors": [
            {"name": "good", "url": "http://lab:%s%s@127.0.0.1:%d/simple" % (SECRET, TOKEN, good.port),
             "insecure": True},
            {"name": "down", "url": "http://lab:%s@127.0.0.1:%d/simple" % (SECRET, refusing.port), "insecure": True},
        ],
    })
    assert not failed
    assert SECRET not in out and TOKEN not in out  # results and the echoed invocation alike
    assert result["results"][0]["url"] == "http://***@127.0.0.1:%d/simple" % good.port
    assert result["results"][0]["healthy"] is True


def test_status_url_credentials_never_show(servers, capsys):
    good = pypi_mirror(servers())
    good.route("/feed.json", 200, {"Content-Type": "application/json"},
               '[{"name": "pypi", "status": "failed", "last_update_ts": 1731116467}]')
    failed, result, out = run_module(capsys, {
        "kind": "pypi",
        "mirrors": [{"name": "good", "url": good.url + "/simple", "insecure": True,
                     "status_url": "http://feed:%s@127.0.0.1:%d/feed.json#pypi" % (SECRET, good.port)}],
        "max_age_h": 24,
    })
    assert not failed
    assert SECRET not in out
    assert result["results"][0]["reason"] == "status feed: pypi failed (last sync failed)"
    feed = [r for r in good.requests if r["path"] == "/feed.json"]
    assert feed[0]["headers"]["Authorization"].startswith("Basic ")  # the feed got its credentials


def test_module_fails_on_plain_http_without_insecure(capsys):
    failed, result, out = run_module(capsys, {
        "kind": "pypi",
        "mirrors": [{"name": "lab", "url": "http://lab:%s@127.0.0.1:9/simple" % SECRET}],
    })
    assert failed and result["failed"] is True
    assert "use https, or set insecure: true" in result["msg"]
    assert SECRET not in out


def test_module_fails_on_docker_mirror_with_path(capsys):
    failed, result, _out = run_module(capsys, {
        "kind": "docker",
        "mirrors": [{"name": "hub", "url": "https://registry.test/v2/"}],
    })
    assert failed
    assert "scheme://host[:port]" in result["msg"]


def test_module_fails_on_duplicate_names(capsys):
    failed, result, _out = run_module(capsys, {
        "kind": "conda",
        "mirrors": [{"name": "a", "url": "https://a.test"}, {"name": "a", "url": "https://b.test"}],
    })
    assert failed
    assert "duplicate mirror name 'a'" in result["msg"]


def test_module_rejects_unknown_kind(capsys):
    failed, result, _out = run_module(capsys, {"kind": "npm", "mirrors": []})
    assert failed
    assert "kind" in result["msg"]


def test_module_requires_mirror_url(capsys):
    failed, result, _out = run_module(capsys, {"kind": "pypi", "mirrors": [{"name": "a"}]})
    assert failed
    assert "url" in result["msg"]


def test_documented_options_match_the_argument_spec():
    doc = yaml.safe_load(mirror_probe.DOCUMENTATION)
    spec = mirror_probe.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in doc["options"].items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
        assert option.get("choices") == spec[name].get("choices"), name
    assert set(doc["options"]["mirrors"]["suboptions"]) == set(spec["mirrors"]["options"])
    assert set(doc["attributes"]) == {"check_mode", "diff_mode", "idempotent"}


def test_documented_return_values_match_a_result(servers, capsys):
    good = pypi_mirror(servers())
    _failed, result, _out = run_module(capsys, {
        "kind": "pypi", "mirrors": [{"name": "good", "url": good.url + "/simple", "insecure": True}]})
    returned = yaml.safe_load(mirror_probe.RETURN)
    assert set(returned) <= set(result)
    assert set(returned["results"]["contains"]) == set(result["results"][0])
    yaml.safe_load(mirror_probe.EXAMPLES)
