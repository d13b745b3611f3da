# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shapes the selection and report tests share: a mirror_probe result and a catalog."""

from __future__ import annotations


def result(name, healthy=True, latency_ms=10, reason=None):
    return {"name": name, "url": "https://%s.example/simple" % name, "healthy": healthy,
            "latency_ms": latency_ms if healthy else None, "http_status": 200 if healthy else None,
            "reason": None if healthy else (reason or "connection refused"), "serial": None}


def catalog(*names, **urls):
    return [{"name": name, "url": urls.get(name, "https://%s.example/simple" % name)} for name in names]
