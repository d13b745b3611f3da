# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing the client files on the host: render, back up, replace atomically, keep N backups.

One implementation for the two writers that run on the host without a config role's tasks:
failover.yml's fast path (module ``gpulab.provision.mirror_probe_all`` with ``write: true``) and
``gpulab-mirror-watch``. The text always comes from :func:`renderers.render_client_config`, the
renderers pip_mirror, conda_mirror and docker_mirror use; the file settings are the roles' own:

- a file that holds a credential is ``0640`` with the role's ``*_credentials_group``, any other
  ``0644``, owner root (when run as root);
- the replaced file is kept beside it as Ansible's ``backup: true`` names it
  (``<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~``), and only the newest ``backup_keep`` of those stay
  (:mod:`backups`, the rule of module ``prune_backups``);
- a broken file or a bad selection is never written over: the file is left, and why is returned.

Client entries are :func:`watch_config._clients`' (``client``, ``path``, ``options``, and for
writing ``backup``, ``backup_keep``, ``credentials_group``; daemon.json also ``reload``: the unit).
"""

from __future__ import annotations

import grp
import os
import shutil
import time

from ansible_collections.gpulab.provision.plugins.module_utils.atomic_file import replace_text
from ansible_collections.gpulab.provision.plugins.module_utils.backups import prune
from ansible_collections.gpulab.provision.plugins.module_utils.host_lock import Lock  # noqa: F401 pylint: disable=unused-import
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import RenderError, render_client_config

# A missing file its role creates whatever the host has; the others only where the client is
# installed (conda's prefix directory; containerd's configuration directory, three levels up).
CREATED_ALWAYS = ("pip_conf", "uv_toml", "daemon_json")
BACKUP_STAMP = "%Y-%m-%d@%H:%M:%S"


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _dir_of(path, levels=1):
    for _level in range(levels):
        path = path.rsplit("/", 1)[0] or "/"
    return path


def would_create(client, path, exists=os.path.isdir):
    """Whether the config role creates ``path`` (missing) for ``client`` on this host."""
    if client in CREATED_ALWAYS:
        return True
    if client == "condarc":
        return exists(_dir_of(path))
    if client == "hosts_toml":
        return exists(_dir_of(path, 3))
    return False


def backup_name(path, pid=None, when=None):
    """The name Ansible's ``backup: true`` gives the copy of ``path`` (``<file>.<pid>.<stamp>~``)."""
    stamp = time.strftime(BACKUP_STAMP, time.localtime(time.time() if when is None else when))
    return "%s.%s.%s~" % (path, os.getpid() if pid is None else pid, stamp)


def file_mode(summary, credentials_group="root"):
    """``(mode, group)`` the config roles give a file: 0640 + the credentials group when it holds one."""
    if summary.get("holds_credentials"):
        return 0o640, credentials_group or "root"
    return 0o644, "root"


def _gid(group):
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise RenderError("group %r does not exist on this host (the role's *_credentials_group)" % group)


def write_file(path, text, mode=0o644, group="root", backup=False, validate=None):
    """Replace ``path`` with ``text`` atomically; returns the backup's path or None.

    The new file gets ``mode`` and, run as root, owner root and ``group``. ``validate`` (a function
    of the temporary file's path returning an error text or None) runs before the replace: a file
    it rejects is never put in place.
    """
    owner = (0, _gid(group)) if os.geteuid() == 0 else None
    saved = []

    def check(tmp):
        problem = validate(tmp) if validate else None
        if problem:
            raise RenderError("%s: the new file was rejected (%s); the old one is kept" % (path, problem))
        if backup and os.path.exists(path):
            saved.append(backup_name(path))
            shutil.copy2(path, saved[0])

    replace_text(path, text, mode, owner, check)
    return saved[0] if saved else None


def _diff(path, before, after):
    return {"before_header": path, "after_header": path, "before": before or "", "after": after}


def plan_files(clients, selection, catalog, create=True, read=read_text, exists=os.path.isdir):
    """Render each client file for ``selection``: ``[{entry, current, result, missing, error}]``.

    ``create``: whether a missing file its role would create is rendered (failover.yml) or left
    alone (the watcher switches only files Ansible wrote). ``result`` is the renderer's answer, or
    None when the file is left (``error`` says why when that is a problem).
    """
    plans = []
    for entry in clients:
        path, client = entry["path"], entry["client"]
        current = read(path)
        plan = {"entry": entry, "current": current, "result": None, "missing": current is None, "error": None}
        plans.append(plan)
        if current is None and not (create and selection.get("status") not in ("kept", "none")
                                    and would_create(client, path, exists)):
            continue
        options = dict(entry.get("options") or {})
        if client == "condarc":
            options["catalog"] = catalog
        try:
            plan["result"] = render_client_config(current, client, selection, options)
        except (RenderError, ImportError) as exc:
            plan["error"] = str(exc)
    return plans


def apply_plans(plans, check=False, diff=False, validate=None):
    """Write the planned files whose bytes change; returns what happened (no file text, no secret).

    :arg validate: ``{client: function(tmp_path) -> error text or None}`` (dockerd --validate).
    :returns: ``{written: [path], backups: [path], pruned: [path], reload: {unit: needs},
        errors: [{path, client, reason}], diffs: [...]}``. A file in ``errors`` is untouched.
    """
    out = {"written": [], "backups": [], "pruned": [], "reload": {}, "errors": [], "diffs": []}
    for plan in plans:
        entry, result = plan["entry"], plan["result"]
        path, client = entry["path"], entry["client"]
        if plan["error"]:
            out["errors"].append({"path": path, "client": client, "reason": plan["error"]})
            continue
        if result is None or not result["changed"]:
            continue
        summary = result["summary"]
        if diff and not summary.get("sensitive"):
            out["diffs"].append(_diff(path, plan["current"], result["content"]))
        out["written"].append(path)
        if client == "daemon_json" and summary.get("needs") in ("reload", "restart"):
            out["reload"][entry.get("reload") or "docker"] = summary["needs"]
        if check:
            continue
        mode, group = file_mode(summary, entry.get("credentials_group"))
        try:
            if plan["missing"]:
                os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
            saved = write_file(path, result["content"], mode, group, bool(entry.get("backup", True)),
                               (validate or {}).get(client))
        except (OSError, RenderError) as exc:
            out["written"].remove(path)
            if client == "daemon_json":
                out["reload"].pop(entry.get("reload") or "docker", None)
            out["errors"].append({"path": path, "client": client, "reason": str(exc)})
            continue
        if saved:
            out["backups"].append(saved)
        if entry.get("backup", True) and entry.get("backup_keep") is not None:
            directory = os.path.dirname(os.path.abspath(path))
            out["pruned"].extend(os.path.join(directory, name) for name in prune(path, int(entry["backup_keep"]))[1])
    return out
