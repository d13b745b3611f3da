# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Modules run here in the test process, as they would on a host."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _module_side(monkeypatch):
    """A module's warnings go into its result, as on a host. ansible-core 2.19 sends them to the
    controller's Display instead once any controller code was imported in the process (the
    inventory and filter tests import it), so a module test's result depended on test order."""
    try:
        from ansible.module_utils import _internal
    except ImportError:  # before 2.19: warnings always go into the result
        return
    if hasattr(_internal, "is_controller"):
        monkeypatch.setattr(_internal, "is_controller", False)
