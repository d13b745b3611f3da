#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prune_backups
short_description: Keep only the newest N backups that Ansible's backup option left beside a file
version_added: "1.0.0"
description:
  - C(ansible.builtin.copy) with C(backup=true) leaves C(<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~) beside the file on every
    change. This module removes all but the newest O(keep) of them. Nothing else in the directory is touched.
  - Newest means the backup's own modification time, not the date in its name (a name is only a name, and a backup named
    with a future date must not make the real newest one go).
  - Only regular files owned by the user the module runs as (root with C(become)) count as backups. A directory, a
    symlink, a FIFO or another user's file named like a backup is neither counted nor removed.
  - To restore a backup, copy it over the file (C(cp -p /etc/pip.conf.1234.2026-11-27@13:00:00~ /etc/pip.conf)).
author:
  - gpulab.provision maintainers (@gpulab)
extends_documentation_fragment:
  - gpulab.provision.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  path:
    description: The file whose backups are pruned (not the backups themselves). A missing directory is not an error.
    type: path
    required: true
  keep:
    description: How many of the newest backups to keep; V(0) removes them all.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Keep the last 5 backups of /etc/pip.conf
  gpulab.provision.prune_backups:
    path: /etc/pip.conf
    keep: 5
"""

RETURN = r"""
kept:
  description: Backups kept, newest first (file names in the file's directory).
  returned: always
  type: list
  elements: str
removed:
  description: Backups removed (or, in check mode, that would be); on a failure, the ones that were.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpulab.provision.plugins.module_utils.backups import PruneError, prune


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True), keep=dict(type="int", default=5)),
        supports_check_mode=True,
    )
    path, keep = module.params["path"], module.params["keep"]
    if keep < 0:
        module.fail_json(msg="keep must be 0 or more, not %d" % keep)
    try:
        kept, removed = prune(path, keep, check=module.check_mode)
    except PruneError as exc:
        # the ones removed are gone: the failure says so (changed), never hides it
        module.fail_json(msg="%s: %s" % (path, exc), changed=bool(exc.removed), removed=exc.removed)
    except OSError as exc:
        module.fail_json(msg="%s: cannot list its directory: %s" % (path, exc), changed=False, removed=[])
    module.exit_json(changed=bool(removed), kept=kept, removed=removed)


if __name__ == "__main__":
    main()
