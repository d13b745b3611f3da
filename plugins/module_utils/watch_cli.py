# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``gpulab-mirror-watch``: the command the role mirror_watch installs on each host.

Thin on purpose: it reads ``/etc/gpulab/mirrors.json`` (:mod:`watch_config`), its state and
mirror_select's local fact, probes (:mod:`watch_probe`, politely: :func:`watch.probe_plan`),
decides (:func:`watch.step`), renders the client files with the collection's renderers
(:func:`renderers.render_client_config`, the ones pip_mirror, conda_mirror and docker_mirror use),
reloads dockerd when daemon.json changed (:func:`dockerd_policy.dockerd_action` with policy
``never``: a reload, never a restart) and records the switch in the local fact. One line per
decision on stdout (the journal under systemd), or one JSON document with ``--json``.

Writes happen under ``flock`` on the lock shared with Ansible (``lock_path``) and only while no
Ansible run holds the lease file (``lease_path``, fresh for ``lease_s`` seconds): Ansible takes
the lock, writes the lease and then writes its files, so the two never write the same file at once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from ansible_collections.gpulab.provision.plugins.module_utils import client_files, config_merge, probe_session, watch
from ansible_collections.gpulab.provision.plugins.module_utils.client_files import Lock, read_text
from ansible_collections.gpulab.provision.plugins.module_utils.watch import fact_text as nice_json
from ansible_collections.gpulab.provision.plugins.module_utils.dockerd_policy import dockerd_action
from ansible_collections.gpulab.provision.plugins.module_utils.watch_probe import probe_request, probe_services

DEFAULT_CONFIG = "/etc/gpulab/mirrors.json"
USER_AGENT = "gpulab.provision-mirror_watch/1"


class CliError(Exception):
    """A problem the command reports and exits 2 on (bad configuration, unreadable files)."""


# --------------------------------------------------------------------------------------------
# Files


def read_json(path, default):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise CliError("%s cannot be read as JSON (%s); fix or remove it" % (path, exc))


def write_atomic(path, text, mode=0o644):
    """The watcher's own files (state, fact): root-owned, replaced atomically, no backup."""
    client_files.write_file(path, text, mode, "root")


def lease_holder(path, lease_s, now):
    """The text of a fresh Ansible lease (an Ansible run is writing), or None."""
    try:
        age = now - os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    if age > float(lease_s):
        return None
    return (read_text(path) or "ansible").strip() or "ansible"


# --------------------------------------------------------------------------------------------
# Applying a switch


def systemctl(*args):
    try:
        done = subprocess.run(["systemctl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return done.returncode, done.stdout.decode("utf-8", "replace").strip()


def apply_switch(service, cfg, decision, config, check, run=systemctl):
    """Write the service's files for ``decision['selection']``; returns ``(written, notes, complete)``.

    Only files that exist are switched (Ansible created them; the watcher never adds one). They are
    written as the config roles write them (:mod:`client_files`: mode by credential, backup, the
    newest backups kept). ``complete`` is False when an existing file could not be rendered or
    written (it stays as it was): the switch is then not recorded, and the next run tries again.
    """
    notes, clients = [], []
    for entry in cfg["clients"]:
        if entry["client"] == "condarc" and config_merge.yaml is None and os.path.exists(entry["path"]):
            notes.append("%s skipped: PyYAML (python3-yaml) is not installed on this host" % entry["path"])
            continue
        clients.append(entry)
    plans = client_files.plan_files(clients, decision["selection"], cfg["mirrors"], create=False)
    notes.extend("%s absent (not configured by Ansible): left alone" % plan["entry"]["path"]
                 for plan in plans if plan["missing"])
    done = client_files.apply_plans(plans, check)
    notes.extend("%s not switched: %s" % (item["path"], item["reason"]) for item in done["errors"])
    for unit, needs in sorted(done["reload"].items()):
        if check:
            break
        active, _out = run("is-active", "--quiet", unit)
        action = dockerd_action(needs, "never", info_rc=active, variable="mirror_watch (never restarts)")
        if action["action"] == "reload":
            rc, out = run("reload", unit)
            notes.append(("reloaded %s" % unit) if rc == 0 else ("reload of %s failed: %s" % (unit, out[:200])))
        else:
            notes.append("%s: %s" % (unit, action["reason"]))
    if check and done["written"]:
        notes.append("check mode: nothing written")
    return done["written"], notes, not done["errors"]


def record_fact(path, service, selection):
    fact = read_json(path, {})
    fact = fact if isinstance(fact, dict) else {}
    fact[service] = watch.fact_entry(selection)
    text = nice_json(fact)
    if read_text(path) != text:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        write_atomic(path, text, mode=0o644)


# --------------------------------------------------------------------------------------------
# One run


def _requests(services, plans, which):
    return {name: probe_request(services[name]["probe"], plans[name]["names"]) for name in which}


def run_once(config, check=False, probe=probe_services, run=systemctl, now=time.time):
    """Probe, decide and (unless ``check``) switch; returns the run's report (no credentials)."""
    services = config.get("services") or {}
    policy = config.get("policy") or {}
    confirm = config.get("confirm", watch.DEFAULT_CONFIRM)
    deadline = policy.get("timeout_s", 3)
    saved = read_json(config["state_path"], {})
    states = dict(saved.get("services") or {}) if isinstance(saved, dict) else {}
    fact = read_json(config["fact_path"], {})
    fact = fact if isinstance(fact, dict) else {}
    report = {"services": {}, "check": bool(check)}

    plans, adopted = {}, {}
    for name, cfg in services.items():
        recorded = (fact.get(name) or {}).get("name") if isinstance(fact.get(name), dict) else None
        states[name], adopted[name] = watch.reconcile(states.get(name), recorded)
        strategy = policy.get("strategy", "first_healthy")
        plans[name] = watch.probe_plan(states[name], cfg["mirrors"], cfg.get("pin"), strategy)
    kw = {"validate_certs": config.get("validate_certs", True), "ca_path": config.get("ca_path")}
    answers = probe(_requests(services, plans, list(services)), deadline, **kw)["services"]

    steps, results = {}, {}
    for name, cfg in services.items():
        answer = answers.get(name) or {"error": "not probed"}
        results[name] = answer.get("results") or []
        if "error" in answer:
            steps[name] = {"state": states[name], "decision": {
                "action": "none", "from": states[name].get("current"), "to": None, "selection": None,
                "reason": "probe not run: %s" % answer["error"]}}
            continue
        steps[name] = watch.step(states[name], results[name], cfg["mirrors"], policy, cfg.get("pin"), confirm,
                                 plans[name]["full"])
    again = [name for name, got in steps.items() if got["decision"]["action"] == "need_full"]
    if again:
        full_plans = {name: {"names": None} for name in again}
        answers = probe(_requests(services, full_plans, again), deadline, **kw)["services"]
        for name in again:
            answer = answers.get(name) or {}
            results[name] = answer.get("results") or []
            if "error" in answer:
                steps[name]["decision"]["reason"] += "; full probe not run: %s" % answer["error"]
                continue
            steps[name] = watch.step(states[name], results[name], services[name]["mirrors"], policy,
                                     services[name].get("pin"), confirm, True)

    switching = [name for name, got in steps.items() if got["decision"]["action"] in watch.SWITCHES]
    with Lock(config["lock_path"], config.get("lock_wait_s", 30)) as lock:
        holder = lease_holder(config["lease_path"], config.get("lease_s", 1800), now()) if switching else None
        for name in services:
            decision = steps[name]["decision"]
            written, notes = [], []
            if decision["action"] in watch.SWITCHES:
                if not check and not lock.acquired:
                    notes.append("not switched: %s is held by another writer; retried next run" % config["lock_path"])
                    steps[name]["state"] = states[name]
                    decision = dict(decision, deferred=True)
                elif not check and holder:
                    notes.append("not switched: an Ansible run holds the lease (%s); retried next run" % holder)
                    steps[name]["state"] = states[name]
                    decision = dict(decision, deferred=True)
                else:
                    written, notes, complete = apply_switch(name, services[name], decision, config, check, run)
                    if not check and complete:
                        record_fact(config["fact_path"], name, decision["selection"])
                    elif not check:
                        notes.append("switch not recorded: retried next run")
                        steps[name]["state"] = states[name]
            if adopted[name] and decision["action"] in ("ok", "none"):
                decision = dict(decision, action="adopt", reason="choice recorded by Ansible; " + decision["reason"])
            public = {key: value for key, value in decision.items() if key != "selection"}
            public.update(service=name, written=written, notes=notes,
                          probed=[r["name"] for r in results[name]],
                          unhealthy={r["name"]: r.get("reason") for r in results[name] if not r.get("healthy")},
                          line=watch.log_line(name, decision, written, notes))
            report["services"][name] = public
        if not check:
            state_dir = os.path.dirname(config["state_path"])
            if state_dir:
                os.makedirs(state_dir, exist_ok=True)
            write_atomic(config["state_path"], nice_json(
                {"version": 1, "services": {name: steps[name]["state"] for name in services}}), mode=0o644)
    return report


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="gpulab-mirror-watch",
        description="Probe the chosen package mirrors; after confirmed failures switch pip, uv, conda, dockerd and "
                    "containerd to the best healthy mirror, and back when the preferred one is healthy again.")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration written by the mirror_watch role")
    parser.add_argument("--once", action="store_true", help="one run, then exit (what the systemd timer starts)")
    parser.add_argument("--check", action="store_true", help="probe and print what would change; write nothing")
    parser.add_argument("--json", action="store_true", help="print the run's report as JSON")
    parser.add_argument("--interval", type=float, default=120.0, help="seconds between runs without --once")
    return parser.parse_args(argv)


def _emit(report, as_json, out):
    if as_json:
        out.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        for name in sorted(report["services"]):
            out.write("%s%s\n" % ("check: " if report["check"] else "", report["services"][name]["line"]))
    out.flush()


def main(argv=None, out=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    probe_session.USER_AGENT = USER_AGENT
    try:
        config = read_json(args.config, None)
        if not isinstance(config, dict) or config.get("version") != 1:
            raise CliError("%s is missing or not a mirror_watch configuration; run the gpulab.provision.mirror_watch "
                           "role" % args.config)
        # The proxy variables mirror_select probes with (gpulab_proxy), so the watcher probes the same way.
        os.environ.update({str(k): str(v) for k, v in (config.get("environment") or {}).items()})
        while True:
            _emit(run_once(config, check=args.check), args.json, out)
            if args.once or args.check:
                return 0
            time.sleep(max(1.0, args.interval))
    except (CliError, watch.WatchError) as exc:
        sys.stderr.write("gpulab-mirror-watch: %s\n" % exc)
        return 2
