#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mirror_probe_all
short_description: Probe every mirror service of a host in one call, choose, and say which config files would change
version_added: "1.0.0"
description:
  - The fast path of C(playbooks/failover.yml). Probes every service of O(mirrors) at once, all bounded
    by one deadline (C(timeout_s) of O(policy)), with the same probes as M(gpulab.provision.mirror_probe).
  - Chooses a mirror per service with the policy, pins and the last good choice (the local fact at
    O(fact_path)), exactly as the role C(gpulab.provision.mirror_select) does, and returns the result as
    RV(selected) (the shape of C(gpulab_mirrors_selected)) and the local fact to record.
  - Renders each client file (pip.conf, uv.toml, .condarc, daemon.json registry mirrors, containerd
    hosts.toml) with the collection's renderers and the config roles' options, and returns in
    RV(pending) the files whose bytes would change, per role, so a role with nothing to change is skipped.
  - The probe arguments per service (requirements, freshness limits, reference and status feed entries)
    are made by the same function as the C(gpulab.provision.mirror_probe_args) filter mirror_select uses.
  - Validates the inventory first and fails with every problem, each naming its variable.
  - Read-only; it never changes the host. Credentials in mirror URLs never appear in the output.
author:
  - gpulab.provision maintainers (@gpulab)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Read-only, so check mode probes exactly as a normal run does.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
    details: Always returns C(changed=false).
options:
  mirrors:
    description: C(gpulab_mirrors), service -> list of C({name, url, insecure, ...}) in preference order.
    type: dict
    required: true
  services:
    description: How each service is probed (C(kind) and its probe options), C(gpulab_mirror_services) merged over the defaults.
    type: dict
    required: true
  policy:
    description: C(gpulab_mirror_policy) with the defaults filled in; C(timeout_s) is the one deadline for all services.
    type: dict
    default: {}
  pin:
    description: C(gpulab_mirror_pin), service -> mirror name.
    type: dict
    default: {}
  require:
    description: C(gpulab_mirror_require), service -> pinned items every mirror must serve (see docs/freshness.md).
    type: dict
    default: {}
  only:
    description: Services to probe; empty means every service of O(mirrors).
    type: list
    elements: str
    default: []
  clients:
    description: The config roles' file options (see the filter C(gpulab.provision.mirror_watch_config)), over their defaults.
    type: dict
    default: {}
  fact_path:
    description: The local fact where mirror_select records the last good choice.
    type: path
    default: /etc/ansible/facts.d/gpulab_mirrors.fact
  ca_path:
    description: PEM bundle of CA certificates to trust when probing; empty uses the system store.
    type: path
  validate_certs:
    description: Verify TLS certificates (the per-mirror C(insecure) is the finer switch).
    type: bool
    default: true
notes:
  - A service whose status is C(none) with C(on_all_down=fail) fails the module, listing every reason.
seealso:
  - module: gpulab.provision.mirror_probe
"""

EXAMPLES = r"""
- name: Probe every service at once and choose
  gpulab.provision.mirror_probe_all:
    mirrors: "{{ gpulab_mirrors }}"
    services: {pypi: {kind: pypi, project: pip}, docker: {kind: docker}}
    policy: {strategy: first_healthy, timeout_s: 3, on_all_down: keep}
  register: __probe
"""

RETURN = r"""
probes:
  description: Per service, the probe results as M(gpulab.provision.mirror_probe) returns them (URLs masked).
  returned: success
  type: dict
selected:
  description: Per service, the entry of C(gpulab_mirrors_selected) (docs/CONVENTIONS.md). Holds real URLs; their secrets are masked in the output.
  returned: success
  type: dict
fact:
  description: The local fact as mirror_select records it (names, status, masked URLs).
  returned: success
  type: dict
fact_changed:
  description: Whether RV(fact) differs from the file at O(fact_path).
  returned: success
  type: bool
fact_dir_exists:
  description: Whether the directory of O(fact_path) exists (so a play can skip creating it).
  returned: success
  type: bool
pending:
  description: Per config role (C(pip_mirror), C(conda_mirror), C(docker_mirror)), the files whose bytes would change, with why.
  returned: success
  type: dict
  sample: {"pip_mirror": [{"path": "/etc/pip.conf", "client": "pip_conf", "reason": "index-url -> https://..."}]}
summary:
  description: One line per service (chosen mirror, status), without credentials.
  returned: success
  type: list
  elements: str
elapsed_ms:
  description: Milliseconds the probe of all services took.
  returned: success
  type: int
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import SecretMasker, url_secrets
from ansible_collections.gpulab.provision.plugins.module_utils.probe_inputs import probe_args
from ansible_collections.gpulab.provision.plugins.module_utils.watch import WatchError
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import watch_config
from ansible_collections.gpulab.provision.plugins.module_utils.watch_probe import probe_request, probe_services
from ansible_collections.gpulab.provision.plugins.module_utils.watch_select import pending_files, select_services


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mirrors=dict(type="dict", required=True, no_log=False),
            services=dict(type="dict", required=True),
            policy=dict(type="dict", default={}),
            pin=dict(type="dict", default={}),
            require=dict(type="dict", default={}),
            only=dict(type="list", elements="str", default=[]),
            clients=dict(type="dict", default={}),
            fact_path=dict(type="path", default="/etc/ansible/facts.d/gpulab_mirrors.fact"),
            ca_path=dict(type="path"),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
        no_log=True,
    )
    params = module.params
    masker = SecretMasker()
    for entries in params["mirrors"].values():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                masker.add_url(entry["url"])
                for secret in url_secrets(entry["url"]):
                    module.no_log_values.add(secret)

    only = params["only"] or list(params["mirrors"])
    unknown = [name for name in only if name not in params["mirrors"]]
    if unknown:
        module.fail_json(msg="only: %s not in gpulab_mirrors (%s)" % (", ".join(unknown), ", ".join(sorted(params["mirrors"]))))
    try:
        built = watch_config(params["mirrors"], params["services"], params["policy"], params["pin"], params["clients"],
                             require=params["require"])
    except WatchError as exc:
        module.fail_json(msg="Mirror inventory: %s" % masker(str(exc)))
    policy = built["config"]["policy"]
    try:
        previous = json.loads(_read(params["fact_path"]) or "{}")
    except ValueError:
        previous = {}
    requests = {name: probe_request(probe_args(name, params["mirrors"][name], params["services"][name], policy,
                                               params["require"])) for name in only}
    try:
        answers = probe_services(requests, policy["timeout_s"], validate_certs=params["validate_certs"],
                                 ca_path=params["ca_path"])
        chosen = select_services(answers["services"], params["mirrors"], policy, params["pin"], previous)
        pending = pending_files({k: v for k, v in built["config"]["services"].items() if k in only},
                                chosen["selected"], _read, os.path.isdir)
    except Exception as exc:  # never let a traceback carry a URL out
        module.fail_json(msg="mirror_probe_all failed: %s" % masker("%s: %s" % (exc.__class__.__name__, exc)))
    results = {name: answer.get("results") or [] for name, answer in answers["services"].items()}
    summary = ["%s: %s, %s (%s)" % (name, entry["status"], entry["name"] or "-", masker(entry["message"]))
               for name, entry in sorted(chosen["selected"].items())]
    if policy.get("on_all_down") == "fail" and chosen["down"]:
        module.fail_json(msg="No healthy mirror (gpulab_mirror_policy.on_all_down: fail); nothing was changed. "
                             + "; ".join(line for line in summary if line.split(":")[0] in chosen["down"]),
                         probes=results)
    module.exit_json(changed=False, probes=results, selected=chosen["selected"], fact=chosen["fact"],
                     fact_changed=chosen["fact"] != previous, fact_dir_exists=os.path.isdir(os.path.dirname(params["fact_path"])),
                     pending=pending, summary=summary,
                     elapsed_ms=answers["elapsed_ms"])


if __name__ == "__main__":
    main()
