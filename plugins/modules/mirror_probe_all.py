#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mirror_probe_all
short_description: Probe every mirror service of a host in one call, choose, and switch the config files
version_added: "1.0.0"
description:
  - The one probe call of the role C(gpulab.provision.mirror_select) (O(record=true)) and of C(playbooks/failover.yml)
    (O(write=true)). Probes every service of O(mirrors) at once, all bounded by one deadline (C(timeout_s)
    of O(policy)), with the same probes as M(gpulab.provision.mirror_probe).
  - Chooses a mirror per service with the policy, pins and the last good choice (the local fact at
    O(fact_path)), exactly as the role C(gpulab.provision.mirror_select) does, and returns the result as
    RV(selected) (the shape of C(gpulab_mirrors_selected)) and the local fact to record.
  - Renders each client file (pip.conf, uv.toml, .condarc, daemon.json registry mirrors, containerd
    hosts.toml) with the collection's renderers and the config roles' options, and returns in
    RV(pending) the files whose bytes would change, per role, so a role with nothing to change is skipped.
  - The probe arguments per service (requirements, freshness limits, reference and status feed entries)
    are made by the same function as the C(gpulab.provision.mirror_probe_args) filter mirror_select uses.
  - Validates the inventory first and fails before probing with every problem, each naming its variable.
  - With O(record=true) it also records the choice in the local fact at O(fact_path) (what mirror_select
    does; the client files are the config roles'), under the lock C(gpulab-mirror-watch) shares.
  - With O(write=false) and O(record=false) (the defaults) it is read-only. With O(write=true) it also writes, in the same
    call, every file that would change, exactly as the config roles write them (the same renderers;
    mode C(0640) and the role's C(*_credentials_group) for a file that holds a credential, else C(0644);
    a backup named as C(backup=true) names it and only the newest C(*_backup_keep) kept; a broken file is
    never written over), records the choice in the local fact, and reloads dockerd when its
    C(registry-mirrors) changed (a reload, never a restart). This is how C(failover.yml) switches a host
    in one module call; what it leaves (a file it cannot render, a daemon.json change that needs a
    restart) is returned in RV(pending) for the config role to do.
  - Writes (O(write) or O(record)) happen under the lock C(gpulab-mirror-watch) shares (O(lock_path)). When the lock
    cannot be taken (held past O(lock_wait_s), or refused as not a regular file owned by root in a directory only root
    writes), nothing is written, the run does not fail, and RV(deferred) says why (also a warning, and a note for
    the report).
  - Credentials in mirror URLs and in O(proxy) never appear in the output (not even when an argument is refused),
    nor a diff of a file that holds one.
author:
  - gpulab.provision maintainers (@gpulab)
extends_documentation_fragment:
  - gpulab.provision.attributes
attributes:
  check_mode:
    support: full
    details: Check mode probes exactly as a normal run does and writes nothing; with O(write=true) or O(record=true) it reports what would be written.
  diff_mode:
    support: full
    details:
      - With O(write=true), one diff per file, except for files whose old or new text holds a credential.
      - With O(record=true), the diff of the local fact (names, status and masked URLs only).
  idempotent:
    support: full
    details: A second run with the same mirrors healthy finds every file already as rendered and writes nothing.
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
  proxy:
    description:
      - The lab's proxy, C(gpulab_proxy) (or what the filter C(gpulab.provision.proxy_settings) makes of it). Each mirror
        is probed through it unless its host is in O(proxy.no_proxy), to which the catalog's entries with C(proxy=false)
        are added. This is the rule every client of the collection follows (a host, C(.domain), IP address, CIDR or C(*)).
      - Its URLs may carry a password, so they are C(no_log) (never echoed). Give the proxy here, not in the task's
        C(environment), which Ansible prints in the command line it shows at C(-vvv).
      - Unset or null, the probe uses the host's C(http_proxy), C(https_proxy) and C(no_proxy) environment variables.
    type: dict
    version_added: 1.3.0
    suboptions:
      http:
        description: Proxy URL (C(http://[user:password@]host:port)) for C(http://) mirrors (and C(https://) ones without O(proxy.https)).
        type: str
      https:
        description: Proxy URL for C(https://) mirrors (and C(http://) ones without O(proxy.http)).
        type: str
      no_proxy:
        description: Hosts, C(.domains), IP addresses or CIDRs reached directly.
        type: list
        elements: str
        default: []
  write:
    description:
      - Write the files that would change, record the local fact and reload dockerd (see the description).
      - V(false) only probes, chooses and returns RV(pending).
    type: bool
    default: false
    version_added: 1.1.0
  record:
    description:
      - Record the choice in the local fact at O(fact_path) when it changed (the role C(gpulab.provision.mirror_select)
        does this), and write no client file. RV(pending) is not computed (empty).
      - O(write=true) records the fact too.
    type: bool
    default: false
    version_added: 1.2.0
  lock_path:
    description:
      - The lock file C(gpulab-mirror-watch) writes under; held while writing.
      - Its directory is created (mode C(0755)) when missing and must be owned by root and writable by no one else;
        the file is created C(0600) and must be a regular file owned by root (a symlink is not followed).
      - Before 1.3.0 the default was C(/run/lock/gpulab-mirrors.lock), in a world-writable directory.
    type: path
    default: /run/gpulab/mirrors.lock
    version_added: 1.1.0
  lock_wait_s:
    description: How long to wait for O(lock_path); then nothing is written and RV(deferred) says why (before 1.3.0 the module failed).
    type: int
    default: 120
    version_added: 1.1.0
  metrics_dir:
    description:
      - The directory node_exporter's textfile collector reads (C(gpulab_metrics_dir); Debian's is
        C(/var/lib/prometheus/node-exporter)). After the probe (every call, read-only ones included, since the probe results are
        real observations) the module updates C(gpulab_mirrors.prom) there (docs/metrics.md) from the same results and
        choices it returns, namely each probed mirror's outcome, latency, serial lag and sync age; the active mirror per service
        where the call applies its choice (O(record), or O(write) unless the switch was deferred); and, when it records
        another choice than the local fact held, one switch with reason C(ansible) (not the first record, where there was
        no choice before). Mirrors and services no longer in O(mirrors) leave the file; the switch counts stay.
      - Shared with C(gpulab-mirror-watch) (the state beside the file, under a lock), so neither loses the other's counts.
      - Empty (the default) writes no metrics. Nothing is written in check mode. A directory that is missing or not
        writable, or a failed write, is a warning naming C(gpulab_metrics_dir); the probe, the choice and the writes are
        the same as without metrics.
    type: str
    default: ""
    version_added: 1.4.0
notes:
  - A service whose status is C(none) with C(on_all_down=fail) fails the module, one line per rejected mirror
    with its reason, and writes nothing.
  - A pin not obeyed (C(pin_unhealthy)), a choice C(kept) while every mirror is down, and C(none) are also
    returned as warnings (credentials masked).
  - Runs as root to write the system files (C(become)).
seealso:
  - module: gpulab.provision.mirror_probe
"""

EXAMPLES = r"""
- name: Probe every service at once, choose, and record the choice in the local fact (as mirror_select does)
  gpulab.provision.mirror_probe_all:
    mirrors: "{{ gpulab_mirrors }}"
    services: {pypi: {kind: pypi, project: pip}, docker: {kind: docker}}
    policy: {strategy: first_healthy, timeout_s: 3, on_all_down: keep}
    record: true
  become: true
  register: __choice

- name: Probe every service at once and choose, through the lab's proxy (never in the task's environment)
  gpulab.provision.mirror_probe_all:
    mirrors: "{{ gpulab_mirrors }}"
    services: {pypi: {kind: pypi, project: pip}, docker: {kind: docker}}
    policy: {strategy: first_healthy, timeout_s: 3, on_all_down: keep}
    proxy: "{{ gpulab_proxy | default({}) | gpulab.provision.proxy_settings(gpulab_mirrors) }}"
  register: __probe

- name: Probe, choose and switch pip.conf, uv.toml and daemon.json in one call
  gpulab.provision.mirror_probe_all:
    mirrors: "{{ gpulab_mirrors }}"
    services: {pypi: {kind: pypi, project: pip}, docker: {kind: docker}}
    policy: {strategy: first_healthy, timeout_s: 3, on_all_down: keep}
    clients: {pip: {backup_keep: 5, credentials_group: pipusers}}
    write: true
  become: true
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
  description: Whether RV(fact) differs from the file at O(fact_path) (with O(record) or O(write), whether it was written).
  returned: success
  type: bool
fact_dir_exists:
  description: Whether the directory of O(fact_path) exists (so a play can skip creating it).
  returned: success
  type: bool
pending:
  description:
    - Per config role (C(pip_mirror), C(conda_mirror), C(docker_mirror)), the files whose bytes would change, with why.
    - With O(record=true), empty (not computed).
    - With O(write=true), only what was left for the role (a file that cannot be rendered or written, a change that needs a dockerd restart).
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
written:
  description: With O(write=true), the files written (in check mode, that would be written).
  returned: success
  type: list
  elements: str
  version_added: 1.1.0
backups:
  description: With O(write=true), the backups made of the replaced files.
  returned: success
  type: list
  elements: str
  version_added: 1.1.0
notes:
  description: "With O(write=true), what happened to dockerd (reloaded, not running), and C(switch deferred: <why>)."
  returned: success
  type: list
  elements: str
  version_added: 1.1.0
deferred:
  description:
    - With O(write=true) or O(record=true), why nothing was written (the lock at O(lock_path) held by another writer
      past O(lock_wait_s), or refused as unsafe); null when the writes were done (or none were needed).
  returned: success
  type: str
  sample: /run/gpulab/mirrors.lock is held by another writer (pid 4242) for more than 120 s
  version_added: 1.3.0
"""

import json
import os
import time

from ansible_collections.gpulab.provision.plugins.module_utils import client_files, metrics, metrics_mirrors
from ansible_collections.gpulab.provision.plugins.module_utils.dockerd_policy import dockerd_action
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import SecretMasker
from ansible_collections.gpulab.provision.plugins.module_utils.probe_inputs import probe_args
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import UrlOpener
from ansible_collections.gpulab.provision.plugins.module_utils.proxy import ProxyError, proxy_settings
from ansible_collections.gpulab.provision.plugins.module_utils.secret_args import SecretArgsModule
from ansible_collections.gpulab.provision.plugins.module_utils.watch import WatchError, fact_text
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import watch_config
from ansible_collections.gpulab.provision.plugins.module_utils.watch_probe import probe_request, probe_services
from ansible_collections.gpulab.provision.plugins.module_utils.watch_select import ROLE_OF, pending_files, select_services


# Statuses that are a warning of the run (the report lists them too): a pin not obeyed, the last good
# choice kept while every mirror is down, no mirror at all.
WARN_STATUS = ("pin_unhealthy", "kept", "none")


def _dockerd_validator(module):
    """``dockerd --validate`` where this dockerd has it (Docker 23+), as docker_mirror validates."""
    path = module.get_bin_path("dockerd")
    if not path:
        return None
    rc, out, err = module.run_command([path, "--help"])
    if "--validate" not in out + err:
        return None

    def validate(tmp):
        rc, out, err = module.run_command([path, "--validate", "--config-file", tmp])
        return None if rc == 0 else (err or out).strip()[:300] or "dockerd --validate failed"
    return validate


def _apply_dockerd(module, reload, check):
    """Reload each dockerd whose daemon.json changed (registry mirrors are re-read on SIGHUP)."""
    notes = []
    systemctl = module.get_bin_path("systemctl")
    for unit, needs in sorted(reload.items()):
        if check:
            notes.append("%s would be reloaded" % unit)
            continue
        active = module.run_command([systemctl, "is-active", "--quiet", unit])[0] if systemctl else 1
        action = dockerd_action(needs, "never", info_rc=active, variable="failover (reload only)")
        if action["action"] != "reload":
            notes.append("%s: %s" % (unit, action["reason"]))
            continue
        rc, out, err = module.run_command([systemctl, "reload", unit])
        if rc != 0:
            module.fail_json(msg="daemon.json was written but systemctl reload %s failed: %s" % (unit, (err or out).strip()[:300]))
        docker = module.get_bin_path("docker")
        for _attempt in range(30):
            if not docker or module.run_command([docker, "info", "--format", "{{.ServerVersion}}"])[0] == 0:
                break
            time.sleep(1)
        notes.append("reloaded %s" % unit)
    return notes


def _write_locked(module, params, plans, fact, validate):
    """Under the lock the watcher shares: write ``plans`` (client_files), then the local fact (unless None).

    Returns ``(done, None)``, or ``(None, why)`` when the lock could not be taken (held past
    ``lock_wait_s``, or refused: host_lock) and nothing was written: the switch is deferred.
    """
    with client_files.Lock(params["lock_path"], params["lock_wait_s"]) as lock:
        if not lock.acquired:
            module.warn("switch deferred, nothing written: %s" % lock.reason)
            return None, lock.reason
        done = client_files.apply_plans(plans, diff=module._diff, validate=validate)
        if fact is not None:
            os.makedirs(os.path.dirname(params["fact_path"]) or ".", mode=0o755, exist_ok=True)
            client_files.write_file(params["fact_path"], fact_text(fact), 0o644, "root")
    return done, None


def _write(module, watched, selected, fact, fact_changed, params):
    """Write what the config roles would write, under the lock the watcher shares; see RV(written)."""
    check = module.check_mode
    plans, left = [], {}
    for service, cfg in watched.items():
        if service not in selected:
            continue
        for plan in client_files.plan_files(cfg["clients"], selected[service], cfg["mirrors"], create=True):
            result = plan["result"]
            # A change dockerd applies only on a restart is the docker_mirror role's (its restart policy).
            if result is not None and result["changed"] and result["summary"].get("needs") == "restart":
                left.setdefault(ROLE_OF[plan["entry"]["client"]], []).append(
                    {"path": plan["entry"]["path"], "client": plan["entry"]["client"],
                     "reason": "needs a dockerd restart: left to docker_mirror and its restart policy"})
                continue
            plans.append(plan)
    changing = [p for p in plans if p["error"] or (p["result"] is not None and p["result"]["changed"])]
    validate = {"daemon_json": _dockerd_validator(module)} if any(
        p["entry"]["client"] == "daemon_json" for p in changing) and not check else {}
    deferred = None
    if check or not (changing or fact_changed):
        done = client_files.apply_plans(changing, check=True, diff=module._diff)
    else:
        done, deferred = _write_locked(module, params, changing, fact if fact_changed else None, validate)
    if deferred:
        done = {"written": [], "backups": [], "reload": {}, "errors": [], "diffs": []}
    done["deferred"] = deferred
    for item in done["errors"]:
        left.setdefault(ROLE_OF[item["client"]], []).append(item)
    done["notes"] = _apply_dockerd(module, done["reload"], check)
    if deferred:
        done["notes"].append("switch deferred: %s" % deferred)
    return done, left


def _record(module, fact, before, fact_changed, params):
    """Write the local fact when it changed (O(record)); ``{changed, diff?, deferred?}``."""
    out = {"changed": fact_changed}
    if fact_changed and module._diff:
        out["diff"] = {"before": before or "", "after": fact_text(fact), "before_header": params["fact_path"],
                       "after_header": params["fact_path"]}
    if fact_changed and not module.check_mode:
        deferred = _write_locked(module, params, [], fact, None)[1]
        if deferred:
            out.update(changed=False, deferred=deferred, notes=["switch deferred: %s" % deferred])
    return out


def _ansible_switches(previous, fact):
    """The choices the local fact changed from one mirror to another (``reason: ansible``)."""
    switches = []
    for service, entry in sorted(fact.items()):
        before = previous.get(service) if isinstance(previous.get(service), dict) else {}
        after = entry if isinstance(entry, dict) else {}
        if isinstance(before.get("name"), str) and before["name"] and isinstance(after.get("name"), str) \
                and after["name"] and after["name"] != before["name"]:
            switches.append({"service": service, "from": before["name"], "to": after["name"], "reason": "ansible"})
    return switches


def _record_metrics(params, results, selected, switches):
    """Update the ``mirrors`` metrics from this call's results and choices; a problem's one line, or None."""
    catalog = {service: [entry["name"] for entry in entries if isinstance(entry, dict) and "name" in entry]
               for service, entries in params["mirrors"].items() if isinstance(entries, list)}
    try:
        metrics_mirrors.record_mirrors(params["metrics_dir"], time.time(), results, selected, switches,
                                       catalog, complete=True)
    except (metrics.MetricsError, OSError, ValueError, TypeError) as exc:
        text = str(exc)
        return text if metrics.VARIABLE in text else "%s: metrics not written: %s" % (metrics.VARIABLE, text)
    return None


def _down_message(chosen, masker):
    """The on_all_down: fail message: one line per rejected mirror of each service with nothing chosen."""
    lines = ["No healthy mirror (gpulab_mirror_policy.on_all_down: fail); nothing was changed."]
    for service in chosen["down"]:
        rejected = chosen["selected"][service].get("rejected") or []
        lines.extend("%s  %s (%s): %s" % (service, item["name"], item["url_masked"], item["reason"]) for item in rejected)
        if not rejected:
            lines.append("%s: %s" % (service, chosen["selected"][service]["message"]))
    return masker("\n".join(lines))


def main():
    # SecretArgsModule: every URL's secret is a no_log value from the start (even a refused argument echoes them all).
    module = SecretArgsModule(
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
            proxy=dict(type="dict", options=dict(http=dict(type="str", no_log=True), https=dict(type="str", no_log=True),
                                                 no_proxy=dict(type="list", elements="str", default=[]))),
            write=dict(type="bool", default=False),
            record=dict(type="bool", default=False),
            lock_path=dict(type="path", default="/run/gpulab/mirrors.lock"),
            lock_wait_s=dict(type="int", default=120),
            metrics_dir=dict(type="str", default=""),
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
    for key in ("http", "https"):
        if (params["proxy"] or {}).get(key):
            masker.add_url(params["proxy"][key])
    try:  # the same check and no_proxy as the filter proxy_settings (the catalog's proxy: false hosts added)
        proxy = proxy_settings({k: v for k, v in (params["proxy"] or {}).items() if v not in (None, [])} or None,
                               params["mirrors"])
    except ProxyError as exc:
        module.fail_json(msg=masker(str(exc)))

    only = params["only"] or list(params["mirrors"])
    unknown = [name for name in only if name not in params["mirrors"]]
    if unknown:
        module.fail_json(msg="only (mirror_select_services): %s not in gpulab_mirrors (%s)"
                             % (", ".join(unknown), ", ".join(sorted(params["mirrors"]))))
    try:  # validates the inventory (mirror_catalog_errors) before anything is probed
        built = watch_config(params["mirrors"], params["services"], params["policy"], params["pin"], params["clients"],
                             require=params["require"], proxy=proxy)
    except WatchError as exc:
        if exc.problems:
            lines = ["Mirror inventory has %d problem(s):" % len(exc.problems)] + exc.problems
            module.fail_json(msg=masker("\n".join(lines)))
        module.fail_json(msg="Mirror inventory: %s" % masker(str(exc)))
    policy = built["config"]["policy"]
    watched = {k: v for k, v in built["config"]["services"].items() if k in only}
    before = client_files.read_text(params["fact_path"])
    try:
        previous = json.loads(before or "{}")
    except (ValueError, RecursionError):  # a fact nested beyond Python's recursion limit too
        previous = {}
    if not isinstance(previous, dict):
        previous = {}
    requests = {name: probe_request(probe_args(name, params["mirrors"][name], params["services"][name], policy,
                                               params["require"])) for name in only}
    try:
        opener = UrlOpener(validate_certs=params["validate_certs"], ca_path=params["ca_path"], proxy=proxy)
        answers = probe_services(requests, policy["timeout_s"], validate_certs=params["validate_certs"],
                                 ca_path=params["ca_path"], opener=opener)
        chosen = select_services(answers["services"], params["mirrors"], policy, params["pin"], previous)
        # with write, _write plans (renders) the files itself and returns what it left as pending
        pending = {}
        if not (params["write"] or params["record"]):
            pending = pending_files(watched, chosen["selected"], client_files.read_text, os.path.isdir)
    except Exception as exc:  # never let a traceback carry a URL out
        module.fail_json(msg="mirror_probe_all failed: %s" % masker("%s: %s" % (exc.__class__.__name__, exc)))
    results = {name: answer.get("results") or [] for name, answer in answers["services"].items()}
    summary = ["%s: %s, %s (%s)" % (name, entry["status"], entry["name"] or "-", masker(entry["message"]))
               for name, entry in sorted(chosen["selected"].items())]
    if policy.get("on_all_down") == "fail" and chosen["down"]:
        _metrics_or_warn(module, params, results, {}, [], masker)
        module.fail_json(msg=_down_message(chosen, masker), probes=results)
    for name, entry in sorted(chosen["selected"].items()):
        if entry["status"] in WARN_STATUS:
            module.warn("mirror_select %s (%s): %s" % (name, entry["status"], masker(entry["message"])))
    fact_changed = chosen["fact"] != previous
    out = dict(changed=False, probes=results, selected=chosen["selected"], fact=chosen["fact"],
               fact_changed=fact_changed, fact_dir_exists=os.path.isdir(os.path.dirname(params["fact_path"])),
               pending=pending, summary=summary, elapsed_ms=answers["elapsed_ms"],
               written=[], backups=[], notes=[], deferred=None)
    if params["write"]:
        try:
            done, left = _write(module, watched, chosen["selected"], chosen["fact"], fact_changed, params)
        except Exception as exc:  # never a traceback with a URL
            module.fail_json(msg="mirror_probe_all could not write: %s" % masker("%s: %s" % (exc.__class__.__name__, exc)),
                             selected=chosen["selected"], summary=summary)
        out.update(changed=not done["deferred"] and (bool(done["written"]) or fact_changed), pending=left,
                   written=done["written"], backups=done["backups"], notes=[masker(note) for note in done["notes"]],
                   deferred=done["deferred"] and masker(done["deferred"]))
        if done["diffs"]:
            out["diff"] = done["diffs"]
    elif params["record"]:
        out.update(_record(module, chosen["fact"], before, fact_changed, params))
    # The active mirror is this call's choice where it is applied: recorded for the config roles (record), or
    # written (write, unless deferred: the files then stay as they were). A read-only call adds its observations only.
    applied = params["record"] or (params["write"] and not out.get("deferred"))
    fact_written = applied and fact_changed and not out.get("deferred")
    switches = _ansible_switches(previous, chosen["fact"]) if fact_written else []
    _metrics_or_warn(module, params, results, chosen["selected"] if applied else {}, switches, masker)
    module.exit_json(**out)


def _metrics_or_warn(module, params, results, selected, switches, masker):
    """The ``mirrors`` metrics of this call (O(metrics_dir), never in check mode); a problem is a warning."""
    if not params["metrics_dir"] or module.check_mode:
        return
    problem = _record_metrics(params, results, selected, switches)
    if problem:
        module.warn(masker(problem))


if __name__ == "__main__":
    main()
