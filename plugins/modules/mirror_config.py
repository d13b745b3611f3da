#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mirror_config
short_description: Write one client configuration file for a mirror selection, rendered by the collection's renderers
version_added: "1.1.0"
description:
  - Reads O(path), renders it for O(selection) with the renderer of O(client) (the pure functions behind the
    C(gpulab.provision.render_client_config) filter, the ones failover.yml and C(gpulab-mirror-watch) use too), and
    writes it only when its bytes change, as every writer of the collection writes (C(module_utils/client_files.py)).
  - A file that holds a credential is written C(0640) with group O(credentials_group), any other C(0644), owner root.
  - The replaced file is kept beside it as C(backup=true) names it (C(<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~)) and only
    the newest O(backup_keep) of those stay (the rule of M(gpulab.provision.prune_backups)).
  - A broken file or a bad selection fails the task naming the file and the problem; the file is never written over.
  - A C(kept) or C(none) selection leaves the file as it is (the renderers' rule), except containerd's hosts.toml of a
    registry other than docker.io, which then names the registry only.
author:
  - gpulab.provision maintainers (@gpulab)
extends_documentation_fragment:
  - gpulab.provision.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: No diff when the old or the new text holds a credential.
  idempotent:
    support: full
options:
  client:
    description: Which file format (and renderer).
    type: str
    required: true
    choices: [pip_conf, uv_toml, condarc, daemon_json, hosts_toml, docker_proxy]
  path:
    description: The file. Its directory is created (C(0755)) when missing.
    type: path
    required: true
  selection:
    description: An entry of C(gpulab_mirrors_selected) (or the shape the C(gpulab.provision.cache_registry_hosts) filter returns).
    type: dict
    required: true
  options:
    description: The renderer's options (see C(gpulab.provision.render_client_config)); O(path) is added.
    type: dict
    default: {}
  catalog:
    description: The service's catalog (C(gpulab_mirrors.<service>)); the C(condarc) renderer reads it (also accepted as C(catalog) in O(options)).
    type: list
    elements: dict
    default: []
  create:
    description: Create the file when it is missing (V(false) leaves a missing file missing).
    type: bool
    default: true
  backup:
    description: Keep the replaced file beside it.
    type: bool
    default: true
  backup_keep:
    description: How many of the newest backups to keep.
    type: int
    default: 5
  credentials_group:
    description: Group of the file when it holds a credential (mode C(0640)).
    type: str
    default: root
  validate:
    description:
      - A command run on the new file before it replaces the old one, with C(%s) for its path, as
        M(ansible.builtin.copy) takes it (C(dockerd --validate --config-file %s)). A failure keeps the old file and
        fails the task with the command's output.
    type: str
notes:
  - Run as root (C(become)) for system files.
seealso:
  - module: gpulab.provision.mirror_probe_all
  - module: gpulab.provision.prune_backups
"""

EXAMPLES = r"""
- name: Point containerd at the lab cache nodes for ghcr.io
  gpulab.provision.mirror_config:
    client: hosts_toml
    path: /etc/containerd/certs.d/ghcr.io/hosts.toml
    selection: "{{ (hostvars | gpulab.provision.cache_registry_hosts(groups['gpulab_cache_nodes'], inventory_hostname))['ghcr.io'] }}"
    options: {registry: ghcr.io}
  become: true
"""

RETURN = r"""
summary:
  description: The renderer's summary (what changed and why, masked URLs, whether the file holds a credential); never the text.
  returned: success
  type: dict
backup_file:
  description: The backup of the replaced file, when one was made.
  returned: changed and a file was replaced
  type: str
removed_backups:
  description: Older backups removed to keep O(backup_keep).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpulab.provision.plugins.module_utils import client_files
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import SecretMasker, url_secrets
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import CLIENTS


def _urls(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "url" and isinstance(item, str):
                yield item
            else:
                yield from _urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            client=dict(type="str", required=True, choices=list(CLIENTS)),
            path=dict(type="path", required=True),
            selection=dict(type="dict", required=True, no_log=False),
            options=dict(type="dict", default={}, no_log=False),
            catalog=dict(type="list", elements="dict", default=[]),
            create=dict(type="bool", default=True),
            backup=dict(type="bool", default=True),
            backup_keep=dict(type="int", default=5, no_log=False),
            credentials_group=dict(type="str", default="root"),
            validate=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    masker = SecretMasker()
    for url in list(_urls(params["selection"])) + list(_urls(params["catalog"])) + list(_urls(params["options"])):
        masker.add_url(url)
        for secret in url_secrets(url):
            module.no_log_values.add(secret)
    if params["backup_keep"] < 0:
        module.fail_json(msg="backup_keep: %d must be 0 or more" % params["backup_keep"])
    entry = {"client": params["client"], "path": params["path"], "options": dict(params["options"], path=params["path"]),
             "backup": params["backup"], "backup_keep": params["backup_keep"],
             "credentials_group": params["credentials_group"]}
    validate = None
    if params["validate"]:
        if "%s" not in params["validate"]:
            module.fail_json(msg="validate: %r must contain %%s (the new file's path)" % params["validate"])

        def validate(tmp):
            rc, out, err = module.run_command(params["validate"] % tmp)
            return None if rc == 0 else ("%s: %s" % (params["validate"] % tmp, (err or out).strip()[:500]))
    try:
        catalog = params["catalog"] or params["options"].get("catalog") or []
        plans = client_files.plan_files([entry], params["selection"], catalog, create=params["create"],
                                        exists=lambda _path: True)
        done = client_files.apply_plans(plans, check=module.check_mode, diff=module._diff,
                                        validate={params["client"]: validate} if validate else None)
    except Exception as exc:  # never a traceback with a URL
        module.fail_json(msg="%s: %s" % (params["path"], masker("%s: %s" % (exc.__class__.__name__, exc))))
    if done["errors"]:
        module.fail_json(msg=masker(done["errors"][0]["reason"]), path=params["path"])
    plan = plans[0]
    summary = dict(plan["result"]["summary"]) if plan["result"] else {
        "client": params["client"], "path": params["path"], "action": "absent", "changed": False,
        "reason": "%s is missing and create is false: left missing" % params["path"]}
    result = dict(changed=bool(done["written"]), summary=summary, removed_backups=done["pruned"])
    if done["backups"]:
        result["backup_file"] = done["backups"][0]
    if done["diffs"]:
        result["diff"] = done["diffs"][0]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
