#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mirror_config
short_description: Write client configuration files for a mirror selection, rendered by the collection's renderers
version_added: "1.1.0"
description:
  - Reads O(path), renders it for O(selection) with the renderer of O(client) (the pure functions behind the
    C(gpulab.provision.render_client_config) filter, the ones failover.yml and C(gpulab-mirror-watch) use too), and
    writes it only when its bytes change, as every writer of the collection writes (C(module_utils/client_files.py)).
  - With O(files) instead of O(client)/O(path)/O(options), several files of one selection (pip.conf and uv.toml) in one
    module call, so one round trip to the host instead of one per file. Every file is rendered first; when any of them
    cannot be rendered (a broken file, a bad option), the task fails naming that file and writes none of them. The
    changed files are then written in the order given.
  - A file that holds a credential is written C(0640) with group O(credentials_group), any other C(0644), owner root.
  - The replaced file is kept beside it as C(backup=true) names it (C(<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~)) and only
    the newest O(backup_keep) of those stay (the rule of M(gpulab.provision.prune_backups); newest by the backup's own
    modification time, only regular files). The backup is written to a temporary file and linked to its name, so
    nothing already at that name (a symlink planted in a group-writable directory) is followed or overwritten; a
    backup that cannot be made (a full disk) fails the task and leaves the file as it was, with no partial backup.
  - A file written and then not pruned (an old backup that cannot be removed) is reported as changed, with a warning.
  - A broken file or a bad selection fails the task naming the file and the problem; the file is never written over.
  - A path that is there but is not a regular file or a symlink to one (a FIFO, socket, device or directory) fails the
    task naming it, before it is opened (a FIFO would block the module for ever).
  - A C(kept) or C(none) selection leaves the file as it is, and a missing one missing (the renderers' rule), except
    containerd's hosts.toml of a registry other than docker.io, which then names the registry only, and daemon.json,
    whose mirror keys stay as they are while the other keys (O(options) C(fragments), C(live_restore), C(extra)) are
    still merged, into a new file when there is none (a fresh GPU host gets the nvidia runtime on an outage day).
  - A credential in any argument (a mirror's URL, the proxy in O(options), a catalog entry's channel URLs) is never
    printed, not even in the arguments Ansible echoes at C(-vvv) or when an argument is refused. The secret part of
    every URL in the arguments is a no_log value from the moment they are read. The URLs themselves are not C(no_log)
    as a whole, which would mask a mirror's URL without credentials in every result and report.
author:
  - gpulab.provision maintainers (@gpulab)
extends_documentation_fragment:
  - gpulab.provision.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - No diff of a file when its old or its new text holds a credential.
      - With O(files), one diff per changed file.
  idempotent:
    support: full
options:
  client:
    description:
      - Which file format (and renderer).
      - Required unless O(files) is given; mutually exclusive with O(files).
    type: str
    choices: [pip_conf, uv_toml, condarc, daemon_json, hosts_toml, docker_proxy]
  path:
    description:
      - The file. Its directory is created (C(0755)) when missing.
      - Required with O(client); mutually exclusive with O(files).
    type: path
  files:
    description:
      - Several files of the one O(selection), written in one call (instead of O(client), O(path) and O(options)).
      - O(selection), O(catalog), O(backup), O(backup_keep), O(credentials_group) and O(warn) apply to every file;
        O(create) and O(validate) are the default of each entry's own.
      - Rendered all before any is written; one that cannot be rendered fails the task and none is written.
      - Two entries with the same O(files[].path) are an error. An empty list changes nothing.
    type: list
    elements: dict
    version_added: 1.2.0
    suboptions:
      client:
        description: Which file format (and renderer).
        type: str
        required: true
        choices: [pip_conf, uv_toml, condarc, daemon_json, hosts_toml, docker_proxy]
      path:
        description: The file. Its directory is created (C(0755)) when missing.
        type: path
        required: true
      options:
        description: The renderer's options, as O(options) for one file; O(files[].path) is added.
        type: dict
        default: {}
      create:
        description: Create the file when it is missing; default O(create).
        type: bool
      validate:
        description: A command run on the new file before it replaces the old one, as O(validate); default O(validate).
        type: str
  selection:
    description: An entry of C(gpulab_mirrors_selected) (or the shape the C(gpulab.provision.cache_registry_hosts) filter returns).
    type: dict
    required: true
  options:
    description:
      - The renderer's options (see C(gpulab.provision.render_client_config)); O(path) is added.
      - Only with O(client); with O(files) each entry has its own O(files[].options).
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
  warn:
    description:
      - Also return the renderers' warnings (an C(extra-index-url) in pip.conf, nothing healthy to write) as the task's
        warnings, which Ansible prints where the task ran. They are in RV(summary) either way.
    type: bool
    default: false
    version_added: 1.2.0
notes:
  - Run as root (C(become)) for system files.
  - With O(files), a write that fails (O(validate) rejects the new file, the disk is full) stops there. The files
    before it are written (RV(files) says which, and the task reports changed), the ones after it are not.
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

- name: Point pip and uv at the chosen PyPI mirror, in one call
  gpulab.provision.mirror_config:
    files:
      - {client: pip_conf, path: /etc/pip.conf, options: {service: pypi, timeout: 10, retries: 2}}
      - {client: uv_toml, path: /etc/uv/uv.toml, options: {service: pypi}}
    selection: "{{ gpulab_mirrors_selected.pypi }}"
    credentials_group: labusers
    warn: true
  become: true
  register: __pip_files

- name: Which files changed
  ansible.builtin.debug:
    msg: "{{ __pip_files.files | selectattr('changed') | map(attribute='path') | list }}"
"""

RETURN = r"""
summary:
  description:
    - The renderer's summary (what changed and why, masked URLs, whether the file holds a credential); never the text.
    - One shape whatever the status and whether the file exists (the roles read its keys without C(default())), with
      C(client), C(path), C(action) (render, untouched, mirrors untouched, remove, absent), C(status), C(mirror),
      C(url_masked), C(reason), C(warnings), C(changed), C(holds_credentials), C(sensitive), C(needs) (none, reload,
      restart, what dockerd needs to apply it), C(changed_keys) (daemon.json keys; V([]) for other files), C(present)
      (whether the file existed), and the client's own keys (pip.conf C(trusted_host), C(extra_index_url), C(proxy);
      .condarc C(channel_alias), C(default_channels), C(custom_channels); daemon.json C(registry_mirrors); hosts.toml
      C(hosts), C(registry); the dockerd drop-in C(proxy)).
    - With O(files), one summary of them all (C(action=files)) with C(changed), C(paths), C(changed_paths),
      C(holds_credentials) and C(sensitive) (any file), C(warnings) (every file's) and C(reason) (each file's, joined).
  returned: success
  type: dict
backup_file:
  description: The backup of the replaced file, when one was made (one file; with O(files) see RV(files)).
  returned: changed and a file was replaced, without O(files)
  type: str
removed_backups:
  description: Older backups removed to keep O(backup_keep) (with O(files), of every file).
  returned: success
  type: list
  elements: str
files:
  description: One entry per O(files) entry, in that order; on a failed write, the files up to the one that failed.
  returned: with O(files)
  type: list
  elements: dict
  version_added: 1.2.0
  contains:
    path:
      description: The file.
      type: str
      returned: always
    client:
      description: Its format.
      type: str
      returned: always
    changed:
      description: Whether it was written (in check mode, whether it would be).
      type: bool
      returned: always
    summary:
      description: The renderer's summary of this file, as RV(summary) without O(files).
      type: dict
      returned: always
    backup_file:
      description: The backup of the replaced file.
      type: str
      returned: when one was made
    removed_backups:
      description: Older backups of this file removed to keep O(backup_keep).
      type: list
      elements: str
      returned: always
"""

from ansible_collections.gpulab.provision.plugins.module_utils import client_files
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import SecretMasker
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import CLIENTS, summary_shape
from ansible_collections.gpulab.provision.plugins.module_utils.secret_args import SecretArgsModule


def _urls(value):
    """Every URL (a string holding ``://``) anywhere in ``value``, whatever its key: a mirror's url, the
    proxy in options.proxy, a catalog entry's channel_alias, a daemon.json key in options.extra."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item)
    elif isinstance(value, str) and "://" in value:
        yield value


def _validator(module, command, field):
    """A function of the new file's path for client_files (None when the command passes), or None."""
    if not command:
        return None
    if "%s" not in command:
        module.fail_json(msg="%s: %r must contain %%s (the new file's path)" % (field, command))

    def validate(tmp):
        rc, out, err = module.run_command(command % tmp)
        return None if rc == 0 else ("%s: %s" % (command % tmp, (err or out).strip()[:500]))
    return validate


def _named(path, reason):
    """The reason, naming the file, without a closing full stop (a sentence follows)."""
    reason = reason.rstrip().rstrip(".")
    return reason if path in reason else "%s: %s" % (path, reason)


def _entries(module):
    """The files of this call, each with its client_files entry, create flag and validator."""
    params = module.params
    many = params["files"] is not None
    if many and params["options"]:
        module.fail_json(msg="options: give each file its own (files[].options); options goes with client and path")
    items = params["files"] if many else [{"client": params["client"], "path": params["path"],
                                           "options": params["options"], "create": None, "validate": None}]
    entries, seen = [], set()
    for index, item in enumerate(items):
        path, field = item["path"], "files[%d]." % index if many else ""
        if path in seen:
            module.fail_json(msg="%spath: %s is given twice" % (field, path))
        seen.add(path)
        options = item["options"] or {}
        entries.append({
            "entry": {"client": item["client"], "path": path, "options": dict(options, path=path),
                      "backup": params["backup"], "backup_keep": params["backup_keep"],
                      "credentials_group": params["credentials_group"]},
            "catalog": params["catalog"] or options.get("catalog") or [],
            "create": params["create"] if item["create"] is None else item["create"],
            "validate": _validator(module, params["validate"] if item["validate"] is None else item["validate"],
                                   field + "validate")})
    return entries


def _plan(module, masker, entries):
    """Render every file; fail naming each one that cannot be rendered, before any is written."""
    plans = []
    for item in entries:
        path = item["entry"]["path"]
        try:
            plans.extend(client_files.plan_files([item["entry"]], module.params["selection"], item["catalog"],
                                                 create=item["create"], exists=lambda _path: True))
        except Exception as exc:  # never a traceback with a URL
            module.fail_json(msg="%s: %s" % (path, masker("%s: %s" % (exc.__class__.__name__, exc))), path=path)
    broken = [plan for plan in plans if plan["error"]]
    if broken and module.params["files"] is None:
        module.fail_json(msg=masker(broken[0]["error"]), path=broken[0]["entry"]["path"])
    if broken:
        module.fail_json(msg="%s. Nothing was written (%s)." % (
            "; ".join(masker(_named(plan["entry"]["path"], plan["error"])) for plan in broken),
            ", ".join(plan["entry"]["path"] for plan in plans)), paths=[plan["entry"]["path"] for plan in broken])
    return plans


def _summary(plan, selection):
    """The renderer's summary, or one of the same shape (every key) for a file left missing."""
    if plan["result"]:
        return dict(plan["result"]["summary"])
    entry = plan["entry"]
    return summary_shape(entry["client"], {
        "path": entry["path"], "action": "absent", "status": selection.get("status") or "none",
        "mirror": selection.get("name"), "present": False,
        "reason": "%s is missing and create is false: left missing" % entry["path"]})


def _write(module, masker, entries, plans):
    """Write the changed files in order; a failed write stops there. Returns (files, diffs, pruned)."""
    files, diffs, pruned = [], [], []
    for item, plan in zip(entries, plans):
        path, client = item["entry"]["path"], item["entry"]["client"]
        try:
            done = client_files.apply_plans([plan], check=module.check_mode, diff=module._diff,
                                            validate={client: item["validate"]} if item["validate"] else None)
        except Exception as exc:  # never a traceback with a URL
            done = {"errors": [{"reason": "%s: %s: %s" % (path, exc.__class__.__name__, exc)}]}
        if done["errors"]:
            reason = masker(done["errors"][0]["reason"])
            if module.params["files"] is None:
                module.fail_json(msg=reason, path=path)
            written = [done_file["path"] for done_file in files if done_file["changed"]]
            module.fail_json(msg="%s. %s" % (_named(path, reason), ("Written before it: %s." % ", ".join(written))
                                             if written else "Nothing was written."),
                             path=path, changed=bool(written), files=files, removed_backups=pruned)
        result = {"path": path, "client": client, "changed": bool(done["written"]),
                  "summary": _summary(plan, module.params["selection"]), "removed_backups": done["pruned"]}
        for warning in done.get("warnings") or []:
            # the file was written: say what failed after it (pruning), never report the write as not done
            module.warn(masker(warning))
        if done["backups"]:
            result["backup_file"] = done["backups"][0]
        files.append(result)
        diffs.extend(done["diffs"])
        pruned.extend(done["pruned"])
    return files, diffs, pruned


def _one_file(files, diffs, pruned):
    result = dict(changed=files[0]["changed"], summary=files[0]["summary"], removed_backups=pruned)
    if "backup_file" in files[0]:
        result["backup_file"] = files[0]["backup_file"]
    if diffs:
        result["diff"] = diffs[0]
    return result


def _many_files(files, diffs, pruned):
    summaries = [done_file["summary"] for done_file in files]
    changed = [done_file["path"] for done_file in files if done_file["changed"]]
    summary = {
        "action": "files", "changed": bool(changed), "paths": [done_file["path"] for done_file in files],
        "changed_paths": changed,
        "holds_credentials": any(s.get("holds_credentials") for s in summaries),
        "sensitive": any(s.get("sensitive") for s in summaries),
        "warnings": [warning for s in summaries for warning in s.get("warnings") or []],
        "reason": "; ".join("%s: %s" % (s.get("path"), s.get("reason")) for s in summaries)}
    result = dict(changed=bool(changed), summary=summary, files=files, removed_backups=pruned)
    if diffs:
        result["diff"] = diffs
    return result


def main():
    module = SecretArgsModule(
        argument_spec=dict(
            client=dict(type="str", choices=list(CLIENTS)),
            path=dict(type="path"),
            files=dict(type="list", elements="dict", options=dict(
                client=dict(type="str", required=True, choices=list(CLIENTS)),
                path=dict(type="path", required=True),
                options=dict(type="dict", default={}, no_log=False),
                create=dict(type="bool"),
                validate=dict(type="str"),
            )),
            selection=dict(type="dict", required=True, no_log=False),
            options=dict(type="dict", default={}, no_log=False),
            catalog=dict(type="list", elements="dict", default=[]),
            create=dict(type="bool", default=True),
            backup=dict(type="bool", default=True),
            backup_keep=dict(type="int", default=5, no_log=False),
            credentials_group=dict(type="str", default="root"),
            validate=dict(type="str"),
            warn=dict(type="bool", default=False),
        ),
        required_one_of=[("client", "files")],
        mutually_exclusive=[("client", "files"), ("path", "files")],
        required_together=[("client", "path")],
        supports_check_mode=True,
    )
    params = module.params
    # SecretArgsModule has made every URL secret in the arguments a no_log value (the output, the
    # echoed arguments at -vvv and the journal mask it); the masker scrubs the same out of free text.
    masker = SecretMasker(_urls(params))
    if params["backup_keep"] < 0:
        module.fail_json(msg="backup_keep: %d must be 0 or more" % params["backup_keep"])
    entries = _entries(module)
    files, diffs, pruned = _write(module, masker, entries, _plan(module, masker, entries))
    if params["warn"]:
        for done_file in files:
            for warning in done_file["summary"].get("warnings") or []:
                module.warn(masker(warning))
    module.exit_json(**(_one_file if params["files"] is None else _many_files)(files, diffs, pruned))


if __name__ == "__main__":
    main()
