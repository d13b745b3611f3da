# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recorded mirror feed samples in tests/fixtures/mirror-feeds (its README says where each came from)."""

from __future__ import annotations

import json
import os

FEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "mirror-feeds")


def feed_text(name):
    with open(os.path.join(FEEDS, name), encoding="utf-8") as handle:
        return handle.read()


def feed_json(name):
    return json.loads(feed_text(name))
