#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: report_file
short_description: Write a run report file on the controller
version_added: "1.2.0"
description:
  - Writes O(content) to O(dest) on the B(controller), atomically, when the bytes differ.
  - Runs in the controller's own process through its action plugin (no module is sent to a host, no
    Python process is started), so the report play of C(site.yml) and C(failover.yml) writes its JSON
    file without the two module runs C(ansible.builtin.copy) delegated to localhost costs.
  - Use it with C(run_once) in a play over the lab's hosts; C(delegate_to) is not needed.
author:
  - gpulab.provision maintainers (@gpulab)
extends_documentation_fragment:
  - gpulab.provision.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the file would change and writes nothing (unless the task sets C(check_mode=false)).
  diff_mode:
    support: full
    details: The old and new text of the report (a report holds masked URLs only).
  idempotent:
    support: full
    details: The same content a second time changes nothing.
options:
  dest:
    description: The report's path on the controller; its directory must exist.
    type: path
    required: true
  content:
    description: The report's text.
    type: str
    required: true
  mode:
    description: The file's mode when it is written.
    type: str
    default: '0644'
notes:
  - The action plugin does the work; this module file documents it.
seealso:
  - module: ansible.builtin.copy
"""

EXAMPLES = r"""
- name: Write the report as JSON on the controller
  gpulab.provision.report_file:
    content: "{{ report_data | to_nice_json }}\n"
    dest: ./gpulab-report.json
  run_once: true
"""

RETURN = r"""
dest:
  description: The absolute path written.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(dest=dict(type="path", required=True), content=dict(type="str", required=True),
                           mode=dict(type="str", default="0644")),
        supports_check_mode=True,
    )
    module.fail_json(msg="gpulab.provision.report_file runs on the controller through its action plugin; "
                         "this module file only documents it")


if __name__ == "__main__":
    main()
