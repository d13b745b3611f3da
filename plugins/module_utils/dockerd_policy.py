# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One policy for applying a change to dockerd: nothing, reload, restart, or a pending restart.

Two roles change what dockerd must load: docker_mirror (daemon.json) and nvidia_container_toolkit
(the nvidia hook, found only at dockerd's start). Both decide here, from what the running daemon
said, so the rule is the same everywhere:

* a restart happens only when the change needs one and the policy allows it;
* under ``if_safe`` the daemon is restarted only when that is known to be safe: live-restore is on,
  or ``docker ps`` answered and listed no running container. Anything unknown (``docker ps``
  failed, printed something unexpected) means *do not restart*: the change stays pending and the
  reason says why.
"""

from __future__ import annotations

import re

NEEDS = ("none", "reload", "restart")
POLICIES = ("if_safe", "always", "never")
ACTIONS = ("none", "reload", "restart", "pending")

_CONTAINER_ID = re.compile(r"^[0-9a-f]{12,64}$")


class DockerdPolicyError(ValueError):
    """Inputs the policy cannot decide on (a programming or inventory error, never a host state)."""


def _running_containers(ps_rc, ps_stdout):
    """Number of running containers from ``docker ps -q``, or None when it is not known."""
    if ps_rc is None or int(ps_rc) != 0:
        return None
    lines = [line.strip() for line in (ps_stdout or "").splitlines() if line.strip()]
    if not all(_CONTAINER_ID.match(line) for line in lines):
        return None
    return len(lines)


def dockerd_action(needs, policy="if_safe", info_rc=None, info_stdout="", ps_rc=None, ps_stdout="",
                   variable="docker_mirror_restart"):
    """Decide how a change reaches dockerd.

    ``needs``: ``none`` | ``reload`` | ``restart`` (what the change requires);
    ``policy``: ``if_safe`` | ``always`` | ``never`` (the user's restart policy, named ``variable``);
    ``info_rc`` / ``info_stdout``: ``docker info --format '{{.LiveRestoreEnabled}}'``;
    ``ps_rc`` / ``ps_stdout``: ``docker ps -q`` (only read when a restart is considered).

    Returns ``{action, reason, running_containers, live_restore}`` where action is ``none``,
    ``reload``, ``restart`` or ``pending`` (a restart that was needed and not done).
    """
    if needs not in NEEDS:
        raise DockerdPolicyError("needs %r is unknown; use one of %s" % (needs, ", ".join(NEEDS)))
    if policy not in POLICIES:
        raise DockerdPolicyError("%s: %r is unknown; use if_safe, always or never" % (variable, policy))
    running = info_rc is not None and int(info_rc) == 0
    live_restore = (info_stdout or "").strip().lower() == "true" if running else None
    containers = _running_containers(ps_rc, ps_stdout) if running else None
    result = {"action": "none", "reason": "", "running_containers": containers, "live_restore": live_restore}

    if needs == "none":
        result["reason"] = "nothing to apply"
    elif not running:
        result["reason"] = "dockerd is not running (docker info failed): it reads the change when it starts"
    elif needs == "reload":
        result.update(action="reload", reason="only keys dockerd re-reads on SIGHUP changed")
    elif policy == "always":
        result.update(action="restart", reason="%s is always" % variable)
    elif policy == "never":
        result.update(action="pending", reason="restart needed, %s is never" % variable)
    elif live_restore:
        result.update(action="restart", reason="live-restore is on: running containers survive the restart")
    elif containers is None:
        result.update(action="pending",
                      reason="restart needed, but running containers are unknown (docker ps failed) and "
                             "live-restore is off: not restarting")
    elif containers == 0:
        result.update(action="restart", reason="no running container and live-restore is off")
    else:
        result.update(action="pending",
                      reason="restart needed: %d running containers and live-restore off (%s is if_safe)"
                             % (containers, variable))
    return result
