# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""report_file: write a run report on the controller, in the controller's own process.

No module is sent anywhere: ``ansible.builtin.copy`` delegated to localhost runs two modules (stat,
then copy) in new Python processes, ~0.8 s per run; this writes the file directly. The module file
of the same name documents the options (ansible-doc gpulab.provision.report_file).
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.gpulab.provision.plugins.module_utils.atomic_file import replace_text


class ActionModule(ActionBase):
    """Write ``content`` to ``dest`` on the controller when the bytes differ."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("content", "dest", "mode"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        dest, content = args.get("dest"), args.get("content")
        if not isinstance(dest, str) or not dest:
            raise AnsibleActionFail("dest must be the report's path on the controller")
        if not isinstance(content, str):
            raise AnsibleActionFail("content must be a string (the report's text)")
        mode = args.get("mode", "0644")
        try:
            mode = int(str(mode), 8)
        except ValueError:
            raise AnsibleActionFail("mode %r must be octal, e.g. '0644'" % (mode,))
        dest = os.path.abspath(os.path.expanduser(dest))
        try:
            with open(dest, encoding="utf-8") as handle:
                before = handle.read()
        except FileNotFoundError:
            before = None
        except OSError as exc:
            raise AnsibleActionFail("cannot read %s: %s" % (dest, exc))
        changed = before != content
        result.update(changed=changed, dest=dest)
        if changed and self._task.diff:
            result["diff"] = {"before_header": dest, "after_header": dest, "before": before or "", "after": content}
        if changed and not self._task.check_mode:
            if not os.path.isdir(os.path.dirname(dest)):
                raise AnsibleActionFail("the directory of %s does not exist; create it or set another path" % dest)
            try:
                replace_text(dest, content, mode)
            except OSError as exc:
                raise AnsibleActionFail("cannot write %s: %s" % (dest, exc))
        return result
