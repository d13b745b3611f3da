# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module arguments that carry URLs with credentials: their secrets are never echoed, from the start.

Ansible masks an option's value wherever it appears only when the argument spec marks it
``no_log``, and then the whole value. The mirror modules show their URLs, masked, on purpose (a
person must see which mirror was chosen), so a URL option is not ``no_log``: the secret parts of
each URL (userinfo, a secret-looking query value: :func:`mirror_url.url_secrets`) are added to the
module's no_log values instead. :class:`SecretArgsModule` adds them as soon as the arguments are
read, before they are validated: a validation failure (an option of the wrong type) echoes every
argument in ``invocation``, before the module's own code could register anything.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import url_secrets


def secrets_in(value):
    """The secret parts of every URL (a string holding ``://``) anywhere in ``value`` (dicts, lists)."""
    found = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, str) and "://" in item:
            found.update(url_secrets(item))
    return found


class LongestFirst(set):
    """A set of no_log values that iterates longest first, the order ansible-core 2.19's
    remove_values replaces them in. Before 2.19 it replaced them in the set's order (random per
    process): of two secrets where one holds the other (one mirror's password starts with another's),
    the shorter replaced first left the rest of the longer one in the output."""

    def __iter__(self):
        return iter(sorted(set.__iter__(self), key=len, reverse=True))


class SecretArgsModule(AnsibleModule):
    """An AnsibleModule whose output (result, failure, ``invocation``) never holds a URL's secret
    that came in with its arguments, whatever option carried it and however the module ends."""

    def _load_params(self):
        super()._load_params()
        self.no_log_values = LongestFirst(self.no_log_values)
        self.no_log_values.update(secrets_in(self.params))
