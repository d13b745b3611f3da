# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter glue shared by the collection's filter plugins (controller side only)."""

from __future__ import annotations

from functools import wraps

from ansible.errors import AnsibleFilterError


def named_filter(name, function):
    """``function`` as a filter: its ValueError / TypeError becomes an AnsibleFilterError that names
    the filter (``gpulab.provision.<name>: <message>``), so a failed task says which filter refused what."""
    @wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            raise AnsibleFilterError("gpulab.provision.%s: %s" % (name, exc)) from exc
    return wrapper
