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

Writes happen under ``flock`` on the lock shared with Ansible (``lock_path``, by default
``/run/gpulab/mirrors.lock`` in a directory only root writes: :mod:`host_lock`) and only while no
Ansible run holds the lease file (``lease_path``, fresh for ``lease_s`` seconds, and no more than
:data:`watch.LEASE_SKEW_S` in the future): Ansible takes the lock, writes the lease and then writes
its files, so the two never write the same file at once. A switch that cannot be written now says
``switch deferred: <why>`` in its line and in the state, and is retried on the next run.

Every problem ends in one line naming the file and the problem (stderr, the journal under
systemd) and an exit status of its own; a problem found before the switches leaves every client
file untouched. When a run meets several of 6, 7 and 8, the status is the highest:

==  ==========================================================================================
0   the run completed (a deferred switch included: it is retried on the next run)
1   an unexpected error (a bug): the exception's class and message, credentials masked
2   bad command line (argparse)
3   the configuration (``--config``) is missing, unreadable, not JSON or wrongly typed
4   the state file is unreadable, not JSON or wrongly typed (remove it: the counts start afresh)
5   the local fact is unreadable, not JSON or wrongly typed (the next Ansible run rewrites it)
6   the state file could not be written (a full or read-only disk): this run's counts are lost
7   the lock was refused (:mod:`host_lock`: another user's file, a symlink, an unsafe directory):
    every switch is deferred until it is fixed
8   a switch could not be completed: a client file or the local fact could not be written
==  ==========================================================================================

Metrics (``metrics_dir`` in the configuration, the role's ``gpulab_metrics_dir``; empty: none):
after each run (not ``--check``) the ``mirrors`` concern (probe outcomes, the active mirror, the
switches this run made: :mod:`metrics_mirrors`) and the ``mirror_watch`` concern (the run's time,
duration, exit status, the timer's interval, runs per status, each service's decision) are written
for node_exporter's textfile collector. A metrics problem is one line naming ``gpulab_metrics_dir``
(stderr and the report's ``metrics.error``); it never changes the exit status nor stops a switch.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import time

from ansible_collections.gpulab.provision.plugins.module_utils import (
    client_files,
    config_merge,
    metrics,
    metrics_mirrors,
    probe_session,
    watch,
)
from ansible_collections.gpulab.provision.plugins.module_utils.client_files import read_text
from ansible_collections.gpulab.provision.plugins.module_utils.host_lock import Lock
from ansible_collections.gpulab.provision.plugins.module_utils.selection import mask_text
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import config_errors
from ansible_collections.gpulab.provision.plugins.module_utils.watch import fact_text as nice_json
from ansible_collections.gpulab.provision.plugins.module_utils.dockerd_policy import dockerd_action
from ansible_collections.gpulab.provision.plugins.module_utils.watch_probe import probe_request, probe_services

DEFAULT_CONFIG = "/etc/gpulab/mirrors.json"
USER_AGENT = "gpulab.provision-mirror_watch/1"


# Exit statuses (see the module docstring).
EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_CONFIG, EXIT_STATE, EXIT_FACT, EXIT_STATE_WRITE, EXIT_LOCK, EXIT_SWITCH = range(9)
# Characters of the lease's text shown in a line (the play name that holds it).
LEASE_TEXT_MAX = 200


class CliError(Exception):
    """A problem the command reports in one line and exits ``status`` on."""

    def __init__(self, message, status=EXIT_CONFIG):
        super().__init__(message)
        self.status = status


def one_line(text):
    """``text`` on one line: control characters (a newline, ESC) shown escaped, never printed."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(text))


# --------------------------------------------------------------------------------------------
# Files


def read_json(path, default, status=EXIT_CONFIG, fix="fix or remove it"):
    """The JSON document at ``path``, ``default`` when it does not exist; CliError(status) otherwise.

    Only a regular file is read (opened without blocking: a FIFO put there is refused, not waited on).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise CliError("%s cannot be read (%s); %s" % (path, exc.strerror or exc, fix), status)
    try:
        with os.fdopen(fd, encoding="utf-8") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise CliError("%s is not a regular file; %s" % (path, fix), status)
            return json.load(handle)
    except OSError as exc:
        raise CliError("%s cannot be read (%s); %s" % (path, exc.strerror or exc, fix), status)
    except (ValueError, RecursionError) as exc:
        raise CliError("%s is not valid JSON (%s); %s" % (path, exc, fix), status)


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def state_errors(saved):
    """Problems of the state file's content (``{version: 1, services: {name: {current, bad, ...}}}``)."""
    if not isinstance(saved, dict):
        return ["must be a JSON object, got %s" % type(saved).__name__]
    services = saved.get("services", {})
    if not isinstance(services, dict):
        return ["services: must be an object, got %s" % type(services).__name__]
    errors = []
    for name, entry in services.items():
        if not isinstance(entry, dict):
            errors.append("services.%s: must be an object, got %s" % (name, type(entry).__name__))
            continue
        for key in ("current", "better", "deferred"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                errors.append("services.%s.%s: %r must be a mirror name or null" % (name, key, entry[key]))
        for key in ("bad", "better_count"):
            if not _count(entry.get(key, 0)):
                errors.append("services.%s.%s: %r must be a whole number >= 0" % (name, key, entry[key]))
    return errors


def fact_errors(fact, services):
    """Problems of the local fact for the watched ``services`` (each entry ``{name, status, url_masked}``)."""
    if not isinstance(fact, dict):
        return ["must be a JSON object, got %s" % type(fact).__name__]
    errors = []
    for name in services:
        entry = fact.get(name)
        if entry is None:
            continue
        if not isinstance(entry, dict):
            errors.append("%s: must be an object {name, status, url_masked}, got %s" % (name, type(entry).__name__))
        elif entry.get("name") is not None and not isinstance(entry["name"], str):
            errors.append("%s.name: %r must be a mirror name or null" % (name, entry["name"]))
    return errors


def load_config(path):
    """``--config`` read and checked (:func:`watch_config.config_errors`); CliError(EXIT_CONFIG) otherwise."""
    fix = "run the gpulab.provision.mirror_watch role to write it again"
    config = read_json(path, None, EXIT_CONFIG, fix)
    if config is None:
        raise CliError("%s is missing; run the gpulab.provision.mirror_watch role to write it" % path, EXIT_CONFIG)
    problems = config_errors(config)
    if problems:
        raise CliError("%s is not a usable mirror_watch configuration: %s; %s"
                       % (path, "; ".join(problems), fix), EXIT_CONFIG)
    return config


def write_atomic(path, text, mode=0o644):
    """The watcher's own files (state, fact): root-owned, replaced atomically, no backup."""
    client_files.write_file(path, text, mode, "root")


def lease_holder(path, lease_s, now, notes=None):
    """The text of a fresh Ansible lease (an Ansible run is writing), or None.

    A lease older than ``lease_s``, or dated more than :data:`watch.LEASE_SKEW_S` in the future
    (a clock step), is expired; one that is not a regular file of root's (the process's user when
    not root) is ignored. Both are said in ``notes``. The lease is never followed through a symlink.
    """
    notes = notes if notes is not None else []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        notes.append("lease %s ignored: %s" % (path, exc.strerror or exc))
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid not in (0, os.geteuid()):
            notes.append("lease %s ignored: not a regular file of root's" % path)
            return None
        state = watch.lease_state(info.st_mtime, now, lease_s)
        if state == "future":
            notes.append("lease %s ignored: dated %d s in the future (more than %d s: a clock step)"
                         % (path, info.st_mtime - now, watch.LEASE_SKEW_S))
        if state != "fresh":
            return None
        text = os.read(fd, LEASE_TEXT_MAX * 4).decode("utf-8", "replace")
    finally:
        os.close(fd)
    first = (text.strip().splitlines() or ["ansible"])[0].strip()
    return one_line(first[:LEASE_TEXT_MAX]) or "ansible"


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
    fact = read_json(path, {}, EXIT_FACT)
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


def _load_state(config, services):
    """The saved per-service states, checked; CliError(EXIT_STATE) when the file is unusable."""
    path = config["state_path"]
    fix = "remove it: the counts start afresh and the choice is read from the local fact"
    saved = read_json(path, {}, EXIT_STATE, fix)
    problems = state_errors(saved)
    if problems:
        raise CliError("%s is not a usable state file: %s; %s" % (path, "; ".join(problems), fix), EXIT_STATE)
    states = {}
    for name in services:
        entry = dict((saved.get("services") or {}).get(name) or {})
        entry.pop("deferred", None)  # said again below if the switch is still deferred
        states[name] = entry or None
    return states


def _load_fact(config, services):
    path = config["fact_path"]
    fix = "fix or remove it: the next Ansible run (site.yml, failover.yml) writes it again"
    fact = read_json(path, {}, EXIT_FACT, fix)
    problems = fact_errors(fact, services)
    if problems:
        raise CliError("%s is not a usable local fact: %s; %s" % (path, "; ".join(problems), fix), EXIT_FACT)
    return fact


class _NoLock:
    """Check mode writes nothing: no lock is taken (nor its directory created)."""

    acquired, refused, reason = True, False, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def run_once(config, check=False, probe=probe_services, run=systemctl, now=time.time, clock=time.monotonic):
    """Probe, decide and (unless ``check``) switch; returns the run's report (no credentials).

    The report has ``services`` (one entry per service, its ``line``), ``status`` (the exit status,
    see the module docstring), ``errors`` (one line each, for stderr) and ``metrics`` (``{dir,
    written, error}``: the metrics files written, see the module docstring).
    :raises CliError: the state file or the local fact is unusable (nothing was written).
    """
    started = clock()
    services = config.get("services") or {}
    policy = config.get("policy") or {}
    confirm = config.get("confirm", watch.DEFAULT_CONFIRM)
    deadline = policy.get("timeout_s", 3)
    states = _load_state(config, services)
    fact = _load_fact(config, services)
    report = {"services": {}, "check": bool(check), "status": EXIT_OK, "errors": []}

    plans, adopted, switched = {}, {}, {}
    for name, cfg in services.items():
        recorded = (fact.get(name) or {}).get("name")
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
    lease_notes = []
    with (_NoLock() if check else Lock(config["lock_path"], config.get("lock_wait_s", 30))) as lock:
        holder = lease_holder(config["lease_path"], config.get("lease_s", 1800), now(), lease_notes) \
            if switching and not check else None
        if lock.refused:
            report["status"] = EXIT_LOCK
            report["errors"].append("lock refused: %s; every switch is deferred until it is fixed" % lock.reason)
        for name in services:
            decision = steps[name]["decision"]
            written, notes = [], []
            if decision["action"] in watch.SWITCHES:
                why = None
                if not lock.acquired:
                    why = lock.reason
                elif holder:
                    why = "an Ansible run holds the lease (%s)" % holder
                if why:
                    notes.extend(lease_notes)
                    notes.append("retried next run")
                    steps[name]["state"] = dict(states[name], deferred=why)
                    decision = dict(decision, deferred=why)
                else:
                    notes.extend(lease_notes)
                    written, notes2, complete = apply_switch(name, services[name], decision, config, check, run)
                    notes.extend(notes2)
                    if not check and complete:
                        try:
                            record_fact(config["fact_path"], name, decision["selection"])
                        except (OSError, CliError) as exc:
                            complete = False
                            notes.append("the local fact %s was not written (%s)"
                                         % (config["fact_path"], getattr(exc, "strerror", None) or exc))
                    if not check and complete:
                        switched[name] = decision
                    if not check and not complete:
                        notes.append("switch not recorded: retried next run")
                        steps[name]["state"] = states[name]
                        report["status"] = max(report["status"], EXIT_SWITCH)
                        report["errors"].append("%s: switch to %s not completed (see its line)"
                                                % (name, decision["to"]))
            if adopted[name] and decision["action"] in ("ok", "none"):
                decision = dict(decision, action="adopt", reason="choice recorded by Ansible; " + decision["reason"])
            public = {key: value for key, value in decision.items() if key != "selection"}
            public.update(service=name, written=written, notes=notes,
                          probed=[r["name"] for r in results[name]],
                          unhealthy={r["name"]: r.get("reason") for r in results[name] if not r.get("healthy")},
                          line=one_line(watch.log_line(name, decision, written, notes)))
            report["services"][name] = public
        if not check:
            try:
                _write_state(config["state_path"], {name: steps[name]["state"] for name in services})
            except OSError as exc:
                report["status"] = max(report["status"], EXIT_STATE_WRITE)
                report["errors"].append("cannot write the state file %s (%s): this run's counts are lost"
                                        % (config["state_path"], exc.strerror or exc))
    report["metrics"] = _record_metrics(config, report, fact, results, steps, switched, check, now, clock, started)
    if report["metrics"]["error"]:
        report["errors"].append(report["metrics"]["error"])
    return report


# --------------------------------------------------------------------------------------------
# Metrics


def _metrics_line(exc):
    """A metrics problem as its one line, naming gpulab_metrics_dir."""
    text = one_line(mask_text(str(exc)))
    return text if metrics.VARIABLE in text else "%s: metrics not written: %s" % (metrics.VARIABLE, text)


def _active(fact_entry, step, switched):
    """The mirror a service's clients use after this run, as ``{name, status, url_masked}`` or None."""
    if switched is not None:
        return watch.fact_entry(switched["selection"])
    if not isinstance(fact_entry, dict) or not fact_entry.get("name"):
        return None
    if step["decision"]["action"] == "all_down":
        return dict(fact_entry, status="kept")  # nothing healthy: the files keep the current mirror
    return fact_entry


def _write_concerns(config, writes):
    """Run ``writes`` (``[(concern, fn)]``) into ``metrics_dir``; ``{dir, written, error}``."""
    directory = config.get("metrics_dir") or ""
    out = {"dir": directory, "written": [], "error": None}
    if not directory:
        return out
    problem = metrics.dir_problem(directory)
    if problem:
        out["error"] = _metrics_line(problem)
        return out
    for concern, write in writes:
        try:
            if write():
                out["written"].append(concern)
        except (metrics.MetricsError, OSError, ValueError, TypeError) as exc:
            out["error"] = out["error"] or _metrics_line(exc)
    return out


def _record_metrics(config, report, fact, results, steps, switched, check, now, clock, started):
    """The ``mirrors`` and ``mirror_watch`` metrics of a run (nothing in check mode)."""
    if check:
        return {"dir": config.get("metrics_dir") or "", "written": [], "error": None}
    services = config.get("services") or {}
    selected = {name: _active(fact.get(name), steps[name], switched.get(name)) for name in services}
    switches = [{"service": name, "from": decision["from"], "to": decision["to"], "reason": decision["action"]}
                for name, decision in sorted(switched.items())]
    catalog = {name: [entry["name"] for entry in cfg["mirrors"]] for name, cfg in services.items()}
    decisions = {name: "deferred" if entry.get("deferred") else entry["action"]
                 for name, entry in report["services"].items()}
    directory = config.get("metrics_dir")
    return _write_concerns(config, [
        (metrics_mirrors.MIRRORS, lambda: metrics_mirrors.record_mirrors(
            directory, now(), results, selected, switches, catalog)),
        (metrics_mirrors.MIRROR_WATCH, lambda: metrics_mirrors.record_watch_run(
            directory, now(), clock() - started, report["status"], config.get("interval_s"), decisions)),
    ])


def record_failed_run(config, status, started, now=time.time, clock=time.monotonic):
    """The ``mirror_watch`` metrics of a run that stopped before deciding (state or fact unusable, a bug).

    Returns the metrics problem's line, or None.
    """
    return _write_concerns(config, [(metrics_mirrors.MIRROR_WATCH, lambda: metrics_mirrors.record_watch_run(
        config.get("metrics_dir"), now(), clock() - started, status, config.get("interval_s"), {}))])["error"]


def _write_state(path, states):
    state_dir = os.path.dirname(path)
    if state_dir:
        os.makedirs(state_dir, exist_ok=True)
    write_atomic(path, nice_json({"version": 1, "services": states}), mode=0o644)


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


def _say(err, text):
    """One line on stderr (the journal): the problem, masked, never split."""
    err.write("gpulab-mirror-watch: %s\n" % one_line(mask_text(str(text))))
    err.flush()


def main(argv=None, out=None, err=None):
    """Run the command; returns its exit status (see the module docstring)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out, err = out or sys.stdout, err or sys.stderr
    probe_session.USER_AGENT = USER_AGENT
    config, started = None, time.monotonic()
    try:
        config = load_config(args.config)
        if not args.once and not args.check and config.get("interval_s") is None:
            config = dict(config, interval_s=max(1.0, args.interval))
        # The proxy variables mirror_select probes with (gpulab_proxy), so the watcher probes the same way.
        os.environ.update(config.get("environment") or {})
        while True:
            started = time.monotonic()
            report = run_once(config, check=args.check)
            _emit(report, args.json, out)
            for line in report["errors"]:
                _say(err, line)
            if args.once or args.check:
                return report["status"]
            time.sleep(max(1.0, args.interval))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # pylint: disable=broad-exception-caught  # one line, never a traceback with a URL
        status = _failure(exc, args.config, err)
        if config is not None and not args.check:  # a run that stopped early still counts in the metrics
            problem = record_failed_run(config, status, started)
            if problem:
                _say(err, problem)
        return status


def _failure(exc, config_path, err):
    """The one line and exit status of a run stopped by ``exc``."""
    if isinstance(exc, CliError):
        _say(err, exc)
        return exc.status
    if isinstance(exc, (watch.WatchError, client_files.RenderError)):
        _say(err, "%s: %s" % (config_path, exc))
        return EXIT_CONFIG
    _say(err, "unexpected error (a bug; please report it): %s: %s" % (exc.__class__.__name__, exc))
    return EXIT_BUG
