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
  (``<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~``), never through anything already at that name, never
  partial, and only the newest ``backup_keep`` of those stay (:mod:`backups`, the rule of module
  ``prune_backups``); a write is never undone nor hidden by a pruning that fails after it;
- a broken file or a bad selection is never written over: the file is left, and why is returned;
- only a regular file (or a symlink to one) is read or replaced: a FIFO, socket, device or
  directory at the path is refused before it is opened (:class:`NotAFileError`, naming it).

Client entries are :func:`watch_config._clients`' (``client``, ``path``, ``options``, and for
writing ``backup``, ``backup_keep``, ``credentials_group``; daemon.json also ``reload``: the unit).
"""

from __future__ import annotations

import errno
import grp
import os
import random
import stat
import tempfile
import time

from ansible_collections.gpulab.provision.plugins.module_utils.atomic_file import replace_text
from ansible_collections.gpulab.provision.plugins.module_utils.backups import PruneError, prune
from ansible_collections.gpulab.provision.plugins.module_utils.host_lock import Lock  # noqa: F401 pylint: disable=unused-import
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import RenderError, render_client_config

# A missing file its role creates whatever the host has; the others only where the client is
# installed (conda's prefix directory; containerd's configuration directory, three levels up).
CREATED_ALWAYS = ("pip_conf", "uv_toml", "daemon_json")
BACKUP_STAMP = "%Y-%m-%d@%H:%M:%S"


class NotAFileError(OSError):
    """The path is there but is not a regular file (nor a symlink to one); the message names it."""


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def _kind(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _refuse(path, mode):
    return NotAFileError(errno.EINVAL, "%s is %s, not a regular file: it was neither read nor written. Remove it "
                                       "(or point the inventory at the real file), then re-run" % (path, _kind(mode)),
                         path)


def check_regular(path):
    """Raise :class:`NotAFileError` unless ``path`` is missing, a regular file or a symlink to one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise _refuse(path, mode)


def read_text(path):
    """The file's text, or None when it does not exist.

    Only a regular file (or a symlink to one) is read: a FIFO, socket, device or directory at the
    path raises :class:`NotAFileError` naming it, before it is opened (a FIFO would block the reader
    for ever, a device could do anything). Opened with ``O_NONBLOCK`` and checked again on the open
    descriptor, so one swapped in between the two is refused as well.
    """
    try:
        check_regular(path)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(path, mode)
        with os.fdopen(fd, encoding="utf-8") as handle:
            fd = None
            return handle.read()
    finally:
        if fd is not None:
            os.close(fd)


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


def _copy_to_backup(path, when=None):
    """Copy ``path`` to a new backup beside it; returns the backup's path.

    Nothing at a backup's name is ever followed or overwritten (a symlink planted there by a user who
    can write the directory, such as a shared ``/opt/conda``): the copy is written to a temporary file
    (``mkstemp``: ``O_EXCL``), then hard-linked to the name, which fails on any existing entry; a name
    that is taken is retried with another number in place of the PID. A copy that fails (a full disk)
    is removed: there is never a partial or 0-byte backup, and the caller keeps the old file. The
    backup keeps the file's mode and is owned by this process's user (as Ansible's backups are; root
    for the roles), the one :func:`backups.prune` counts; its mtime is when it was made (prune
    orders by it).
    """
    directory = os.path.dirname(path) or "."
    src = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(src)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, info.st_mode)
        fd, tmp = tempfile.mkstemp(prefix=".gpulab.backup.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                copied = 0
                while True:
                    chunk = os.read(src, 1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    copied += len(chunk)
                out.flush()
                os.fsync(out.fileno())
                os.fchmod(out.fileno(), stat.S_IMODE(info.st_mode))
            if copied != info.st_size:
                raise OSError(errno.EIO, "%s changed while it was backed up (%d of %d bytes)" % (path, copied, info.st_size))
            for attempt in range(20):
                name = backup_name(path, None if attempt == 0 else random.randint(100000, 9999999), when)
                try:
                    os.link(tmp, name)
                except FileExistsError:
                    continue
                return name
            raise OSError(errno.EEXIST, "%s: 20 backup names in a row are taken (files or symlinks planted beside "
                                        "it?); look at the directory" % path)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    finally:
        os.close(src)


def write_file(path, text, mode=0o644, group="root", backup=False, validate=None):
    """Replace ``path`` with ``text`` atomically; returns the backup's path or None.

    The new file gets ``mode`` and, run as root, owner root and ``group``. ``validate`` (a function
    of the temporary file's path returning an error text or None) runs before the replace: a file
    it rejects is never put in place. With ``backup``, the old file is copied first
    (:func:`_copy_to_backup`); a backup that cannot be made (a full disk) fails the write with
    :class:`OSError` and the old file stays. A path that is there but is not a regular file (nor a
    symlink to one) raises :class:`NotAFileError` before anything is written.
    """
    check_regular(path)
    owner = (0, _gid(group)) if os.geteuid() == 0 else None
    saved = []

    def check(tmp):
        problem = validate(tmp) if validate else None
        if problem:
            raise RenderError("%s: the new file was rejected (%s); the old one is kept" % (path, problem))
        if backup and os.path.exists(path):
            try:
                saved.append(_copy_to_backup(path))
            except OSError as exc:
                raise OSError(exc.errno, "%s: no backup could be made (%s); the old file is kept and nothing was "
                                         "written" % (path, exc.strerror or exc), path)

    replace_text(path, text, mode, owner, check)
    return saved[0] if saved else None


def _diff(path, before, after):
    return {"before_header": path, "after_header": path, "before": before or "", "after": after}


def plan_files(clients, selection, catalog, create=True, read=read_text, exists=os.path.isdir):
    """Render each client file for ``selection``: ``[{entry, current, result, missing, error}]``.

    ``create``: whether a missing file its role would create is rendered (failover.yml) or left
    alone (the watcher switches only files Ansible wrote). A missing file is rendered whatever the
    selection's status: the renderer leaves it missing for ``kept`` / ``none`` unless it has keys to
    merge anyway (daemon.json). ``result`` is the renderer's answer, or None when the file is left
    (``error`` says why when that is a problem: one that cannot be rendered, or a path that is not
    a regular file).
    """
    plans = []
    for entry in clients:
        path, client = entry["path"], entry["client"]
        plan = {"entry": entry, "current": None, "result": None, "missing": False, "error": None}
        plans.append(plan)
        try:
            current = read(path)
        except OSError as exc:  # NotAFileError: a FIFO, device or directory there; or unreadable
            plan["error"] = str(exc) if path in str(exc) else "%s: %s" % (path, exc)
            continue
        plan["current"], plan["missing"] = current, current is None
        # A missing file is rendered for every status (kept and none leave it missing, except the
        # keys daemon.json merges whatever the status: other roles' fragments, live-restore).
        if current is None and not (create and would_create(client, path, exists)):
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
        errors: [{path, client, reason}], diffs: [...], warnings: [text]}``. A file in ``errors`` is
        untouched; a file in ``written`` was written even when a warning says its backups could not
        all be pruned afterwards.
    """
    out = {"written": [], "backups": [], "pruned": [], "reload": {}, "errors": [], "diffs": [], "warnings": []}
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
            # The file is written: a backup that cannot be pruned is a warning, never a write undone.
            directory = os.path.dirname(os.path.abspath(path))
            try:
                removed = prune(path, int(entry["backup_keep"]))[1]
            except PruneError as exc:
                removed = exc.removed
                out["warnings"].append("%s was written, but its old backups were not all pruned: %s" % (path, exc))
            except OSError as exc:
                removed = []
                out["warnings"].append("%s was written, but its old backups were not pruned: %s" % (path, exc))
            out["pruned"].extend(os.path.join(directory, name) for name in removed)
    return out
