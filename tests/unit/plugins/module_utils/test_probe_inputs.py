# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From one service's inventory to the mirror_probe arguments (plugins/module_utils/probe_inputs.py)."""
from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.probe import validate_options
from ansible_collections.gpulab.provision.plugins.module_utils.probe_inputs import probe_args
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import validate_mirrors

POLICY = {"strategy": "first_healthy", "timeout_s": 4, "max_latency_ms": None, "on_all_down": "keep",
          "max_serial_lag": {"pypi": 500}, "max_age_h": 24}


def test_pypi_args_take_this_services_limits_and_pins():
    entries = [{"name": "tuna", "url": "https://p.example/simple", "status_url": "https://p.example/s.json#pypi"},
               {"name": "pypi", "url": "https://pypi.org/simple", "reference": True}]
    args = probe_args("pypi", entries, {"kind": "pypi", "project": "pip"}, POLICY,
                      {"pypi": ["torch==2.5.1"], "conda": ["pytorch=2.5.1"]})
    assert args == {"kind": "pypi", "mirrors": entries, "timeout": 4, "require": ["torch==2.5.1"],
                    "max_serial_lag": 500, "max_age_h": 24, "project": "pip"}
    # what the role passes is what the module accepts
    validate_mirrors(args["kind"], args["mirrors"])
    validate_options("pypi", {key: args[key] for key in ("project", "require", "max_serial_lag", "max_age_h")})


def test_conda_entry_layout_keys_do_not_reach_the_probe():
    entries = [{"name": "lab", "url": "https://c.example/conda", "channel_alias": "https://c.example/cloud",
                "insecure": False}]
    args = probe_args("conda", entries, {"kind": "conda", "channel": "pkgs/main", "subdir": "linux-64"}, POLICY, None)
    assert args["mirrors"] == [{"name": "lab", "url": "https://c.example/conda", "insecure": False}]
    assert args["max_serial_lag"] is None and args["require"] == [] and args["subdir"] == "linux-64"


def test_docker_probe_image_becomes_docker_image():
    args = probe_args("docker", [{"name": "d", "url": "https://d.example"}],
                      {"kind": "docker", "docker_probe_image": "library/python:3.11-slim", "docker_image": "old:1"}, {},
                      {"docker": ["pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime"]})
    assert args["docker_image"] == "library/python:3.11-slim"
    assert "docker_probe_image" not in args and args["timeout"] == 3
    assert args["require"] == ["pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime"]
