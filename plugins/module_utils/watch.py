# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror watcher's decisions: pure functions of (state, probe results, policy).

``gpulab-mirror-watch`` (role mirror_watch) runs these on every host from a systemd timer. No I/O
here: the command reads the files, probes, calls :func:`probe_plan` and :func:`step`, and writes.

Per service the state is ``{current, bad, better, better_count}``:

* ``current``: the mirror the client files point at (adopted from mirror_select's local fact; an
  Ansible run that records another choice resets the counts, Ansible stays in charge).
* ``bad``: consecutive runs in which ``current`` was unhealthy. At ``confirm`` the service fails
  over to what :func:`selection.mirror_selection` picks from a probe of the whole catalog (the
  choice failover.yml would make). Nothing healthy: the files stay as they are (``all_down``).
* ``better`` / ``better_count``: a mirror preferred over ``current`` (the pin, then catalog order)
  healthy in consecutive runs. At ``confirm`` the service switches back. Preference is strict, so
  two mirrors of equal rank never trade places; under ``strategy: fastest`` only the pin is
  preferred (latency is noise, not health).

Politeness (docs/mirror_watch.md): :func:`probe_plan` asks for the chosen mirror only while it is
healthy (plus the mirrors preferred over it, while on a fallback), and the whole catalog only when
the chosen one failed. A decision that would switch on a partial probe says ``need_full``: the
command probes the whole catalog and calls :func:`step` again with the same old state.
"""

from __future__ import annotations

import json

from ansible_collections.gpulab.provision.plugins.module_utils.printable import one_line
from ansible_collections.gpulab.provision.plugins.module_utils.selection import mirror_selection

ACTIVE = ("ok", "pinned", "pin_unhealthy")
ACTIONS = ("none", "adopt", "ok", "suspect", "candidate", "need_full", "failover", "switch_back", "all_down")
SWITCHES = ("failover", "switch_back")
DEFAULT_CONFIRM = 2
# An Ansible lease dated more than this many seconds in the future (a clock step, a controller or
# host with a wrong clock) is expired, not fresh: it would otherwise hold failover for its whole span.
LEASE_SKEW_S = 60


class WatchError(ValueError):
    """Input the watcher cannot work with; the message names the setting and the fix.

    ``problems``: the inventory problems one by one, when the error is the catalog check's (a caller
    may print them one per line; the message joins them).
    """

    def __init__(self, message, problems=None):
        super().__init__(message)
        self.problems = list(problems or [])


def new_state(current=None):
    """A service's state when the watcher first sees ``current`` (or after Ansible changed it)."""
    return {"current": current, "bad": 0, "better": None, "better_count": 0}


def _check_confirm(confirm):
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 1:
        raise WatchError("mirror_watch_confirm: %r must be a whole number >= 1 (runs in a row)" % (confirm,))
    return confirm


def _names(catalog):
    if not isinstance(catalog, (list, tuple)) or not catalog:
        raise WatchError("the service's catalog must be a non-empty list of {name, url}")
    return [entry["name"] for entry in catalog]


def preference(catalog, pin=None, strategy="first_healthy"):
    """Rank per mirror name, lower is preferred: the pin first, then catalog order.

    Under ``fastest`` every mirror but the pin shares one rank, so none is preferred over another.
    """
    names = _names(catalog)
    ranks = {}
    for index, name in enumerate(names):
        ranks[name] = (index + 1) if strategy == "first_healthy" else 1
    if pin in ranks:
        ranks[pin] = 0
    return ranks


def probe_plan(state, catalog, pin=None, strategy="first_healthy"):
    """The mirror names to probe this run, in catalog order, and whether that is the whole catalog.

    Whole catalog: nothing chosen yet, the chosen mirror is not in the catalog, or it failed in the
    last run. Otherwise the chosen mirror and those preferred over it (none while on the favourite).
    """
    names = _names(catalog)
    current = (state or {}).get("current")
    if current not in names or (state or {}).get("bad", 0) > 0:
        return {"names": names, "full": True}
    ranks = preference(catalog, pin, strategy)
    wanted = [name for name in names if name == current or ranks[name] < ranks[current]]
    return {"names": wanted, "full": len(wanted) == len(names)}


def reconcile(state, recorded):
    """Adopt the choice Ansible recorded (local fact entry name) when it differs from ours.

    Returns ``(state, adopted)``: a fresh state on ``recorded`` and True when Ansible (or a first
    run) set another mirror than the one the watcher remembers.
    """
    state = dict(state or new_state())
    if recorded and recorded != state.get("current"):
        return new_state(recorded), True
    return state, False


def lease_state(mtime, now, lease_s, skew=LEASE_SKEW_S):
    """Whether an Ansible lease written at ``mtime`` holds at ``now``: ``fresh``, ``expired`` or ``future``.

    ``expired``: older than ``lease_s`` (an interrupted run). ``future``: dated more than ``skew``
    seconds ahead of ``now``, treated as expired too. A lease within ``skew`` ahead is fresh (clocks
    a little apart), so no lease holds longer than ``lease_s + skew``.
    """
    age = float(now) - float(mtime)
    if age < -float(skew):
        return "future"
    if age > float(lease_s):
        return "expired"
    return "fresh"


def _reason(result):
    if result is None:
        return "not probed"
    return result.get("reason") or ("healthy" if result.get("healthy") else "unhealthy")


def step(state, results, catalog, policy=None, pin=None, confirm=DEFAULT_CONFIRM, full=False):
    """One run's decision for one service.

    :arg state: the service's state before this run (see the module docstring).
    :arg results: ``run_probe`` results (masked URLs) of the mirrors probed this run.
    :arg catalog: the service's catalog entries (real URLs), in preference order.
    :arg full: whether ``results`` cover the whole catalog.
    :returns: ``{"state": new state, "decision": {...}}``. The decision has ``action`` (one of
        :data:`ACTIONS`), ``from``, ``to``, ``reason`` (no credentials) and, for a switch,
        ``selection``: the gpulab_mirrors_selected entry to render (real URLs: never print it).
        ``need_full`` leaves the state as it was: probe everything and call again.
    """
    confirm = _check_confirm(confirm)
    policy = dict(policy or {})
    strategy = policy.get("strategy", "first_healthy")
    state = dict(state or new_state())
    current = state.get("current")
    decision = {"action": "none", "from": current, "to": None, "reason": "", "selection": None}
    if current is None:
        decision["reason"] = "no mirror chosen yet on this host (run site.yml or failover.yml first)"
        return {"state": state, "decision": decision}
    by_name = {result["name"]: result for result in results or []}
    mine = by_name.get(current)

    if not (mine and mine.get("healthy") is True):
        bad = int(state.get("bad", 0)) + 1
        why = "%s: %s" % (current, _reason(mine))
        if bad < confirm:
            decision.update(action="suspect", reason="%s (%d/%d runs)" % (why, bad, confirm))
            return {"state": dict(state, bad=bad, better=None, better_count=0), "decision": decision}
        if not full:
            decision.update(action="need_full", reason="%s (%d/%d runs): probing the whole catalog" % (why, bad, confirm))
            return {"state": state, "decision": decision}
        selection = mirror_selection(list(results), catalog, policy, pin, previous=current)
        if selection["status"] in ACTIVE and selection["name"] != current:
            decision.update(action="failover", to=selection["name"], selection=selection,
                            reason="%s (%d/%d runs); %s" % (why, bad, confirm, selection["message"]))
            return {"state": new_state(selection["name"]), "decision": decision}
        decision.update(action="all_down", reason="%s (%d/%d runs); no healthy mirror to switch to, files kept: %s"
                        % (why, bad, confirm, selection["message"]))
        return {"state": dict(state, bad=bad, better=None, better_count=0), "decision": decision}

    ranks = preference(catalog, pin, strategy)
    own_rank = ranks.get(current, len(ranks) + 1)
    preferred = sorted((r for r in by_name.values() if r.get("healthy") is True and r["name"] in ranks
                        and ranks[r["name"]] < own_rank), key=lambda r: ranks[r["name"]])
    if not preferred:
        decision.update(action="ok", reason="%s healthy" % current)
        return {"state": dict(state, bad=0, better=None, better_count=0), "decision": decision}
    candidate = preferred[0]["name"]
    count = int(state.get("better_count", 0)) + 1 if state.get("better") == candidate else 1
    if count < confirm:
        decision.update(action="candidate", to=candidate,
                        reason="%s healthy; preferred %s healthy again (%d/%d runs)" % (current, candidate, count, confirm))
        return {"state": dict(state, bad=0, better=candidate, better_count=count), "decision": decision}
    if not full:
        decision.update(action="need_full", to=candidate,
                        reason="preferred %s healthy (%d/%d runs): probing the whole catalog" % (candidate, count, confirm))
        return {"state": state, "decision": decision}
    selection = mirror_selection(list(results), catalog, policy, pin, previous=current)
    if selection["status"] in ACTIVE and selection["name"] != current:
        decision.update(action="switch_back", to=selection["name"], selection=selection,
                        reason="%s healthy for %d runs; %s" % (candidate, count, selection["message"]))
        return {"state": new_state(selection["name"]), "decision": decision}
    decision.update(action="ok", reason="%s healthy; the policy keeps it (%s)" % (current, selection["message"]))
    return {"state": dict(state, bad=0, better=None, better_count=0), "decision": decision}


def fact_text(fact):
    """The local fact file's text as Ansible's ``to_nice_json(sort_keys=true)`` + newline writes it
    (mirror_select's record task), so an unchanged fact stays byte-identical whoever writes it."""
    return json.dumps(fact, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


def fact_entry(selection):
    """The local fact's entry for a service, exactly as mirror_select records it (no URL secrets)."""
    return {"name": selection["name"], "status": selection["status"], "url_masked": selection["url_masked"]}


def log_line(service, decision, written=None, notes=None):
    """The one journal line for a decision (no credentials: reasons come masked from the probe).

    A deferred switch (``decision["deferred"]``: why) reads ``<service>: deferred failover a -> b
    (<reason>); switch deferred: <why>``.
    """
    action = decision["action"]
    if action in SWITCHES:
        deferred = "deferred " if decision.get("deferred") else ""
        head = "%s: %s%s %s -> %s" % (service, deferred, action.replace("_", " "), decision["from"], decision["to"])
    else:
        head = "%s: %s %s" % (service, action.replace("_", " "), decision.get("from") or "-")
    text = "%s (%s)" % (head, decision["reason"]) if decision.get("reason") else head
    if decision.get("deferred"):
        text += "; switch deferred: %s" % decision["deferred"]
    if written:
        text += "; wrote %s" % ", ".join(written)
    for note in notes or []:
        text += "; %s" % note
    return one_line(text)  # a name or reason with a newline or ESC cannot print a line of its own
