# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host pattern a playbook of the collection runs on (``gpulab_target``), checked.

A play's ``hosts:`` is templated once, on the controller, before any host is contacted: an empty or
odd ``gpulab_target`` fails there with the variable's name instead of a play that silently matches
no host.
"""

from __future__ import annotations


def _text(value):
    """A host name is text: ``gpulab_target: 123`` (a number in YAML) is the host called 123."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def host_pattern(value, variable="gpulab_target"):
    """``value`` (a pattern string or a list of patterns) as one Ansible host pattern string.

    :raises ValueError: empty, or not a string / list of strings (the message names ``variable``).
    """
    hint = ("name hosts or groups, e.g. -e %s=gpu, -e %s='gpu:&rack1' or a YAML list; the default is all"
            % (variable, variable))
    value = _text(value)
    if isinstance(value, (list, tuple)):
        parts = [_text(item) for item in value]
        parts = [item.strip() if isinstance(item, str) else item for item in parts]
        if not parts or any(not isinstance(item, str) or not item for item in parts):
            raise ValueError("%s: %r is not a list of host patterns; %s" % (variable, value, hint))
        return ":".join(parts)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("%s: %r is not a host pattern; %s" % (variable, value, hint))
    return value.strip()
