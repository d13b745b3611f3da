# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mirror_probe: probe time against the number of mirrors when half of them are dead.

For N = 5, 20, 50 mirrors on 127.0.20.1.. (one address per mirror; half accept TCP and never
answer, the rest are healthy PEP 503 pages) this measures, in one run:

- the parallel probe (``probe.run_probe``, one deadline D for all mirrors), 3 runs each;
- the same N mirrors, all healthy (how fast the probe returns when nothing stalls);
- a one-at-a-time baseline: each mirror probed alone with the same per-mirror timeout D, as a
  client that tries mirrors in order would. A dead mirror costs D there, so the baseline is about
  (N/2)*D; when that would push the whole bench past ~2 minutes, the remaining dead mirrors are
  estimated from the ones measured and the figure is marked "~".
- the requirement row: 20 mirrors (half stalling) x 10 pinned requirements (``require``, each a
  project page the healthy mirrors serve), one deadline D for everything: the pins of a mirror are
  probed at once, so the wall time stays about D however long the list.

Traffic stays on 127.0.20.0/24 (the bench's block in docs/CONVENTIONS.md); proxies are ignored.
Usage: bench/probe/run [--deadline SECONDS] [--sizes 5,20,50] [--runs 3] [--pins 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
for _path in (os.path.join(ROOT, "collections"), os.path.join(ROOT, "tests", "unit")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from mirror_servers import MirrorServer, StallingListener, pep503_page, pypi_mirror  # noqa: E402

from ansible_collections.gpulab.provision.plugins.module_utils.probe import run_probe  # noqa: E402

BENCH_NET = "127.0.20."
BASELINE_BUDGET_S = 75.0  # total seconds the sequential baselines may take, all sizes together
GOAL_RATIO = 1.2
PIN_ROW_MIRRORS = 20


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deadline", type=float, default=float(os.environ.get("BENCH_PROBE_DEADLINE", "2.0")))
    parser.add_argument("--sizes", default="5,20,50")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pins", type=int, default=10, help="pinned requirements in the requirement row (0: no row)")
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "probe.json"))
    args = parser.parse_args(argv)
    args.sizes = sorted({int(n) for n in args.sizes.split(",") if n.strip()})
    if not args.sizes or args.sizes[-1] > 250 or args.sizes[0] < 1:
        parser.error("sizes must be between 1 and 250 (one 127.0.20.x address per mirror)")
    if not 0.1 <= args.deadline <= 10:
        parser.error("deadline must be between 0.1 and 10 seconds")
    if not 1 <= args.runs <= 10:
        parser.error("runs must be between 1 and 10")
    if not 0 <= args.pins <= 100:
        parser.error("pins must be between 0 and 100")
    return args


def start_mirrors(count, pins=0):
    """Mirror i on 127.0.20.(i+1): even i healthy, odd i dead. Returns (servers, mirrors).

    Healthy mirrors also serve the project pages of ``pins`` requirements ``p0==1.0`` ...
    """
    servers, mirrors = [], []
    for index in range(count):
        host = BENCH_NET + str(index + 1)
        if index % 2:
            server = StallingListener(host).start()
            url = server.url + "/simple"
        else:
            server = pypi_mirror(MirrorServer(host))
            for pin in range(pins):
                server.route("/simple/p%d/" % pin, 200, {"Content-Type": "text/html"},
                             pep503_page(["p%d-1.0-py3-none-any.whl" % pin, "p%d-1.0.tar.gz" % pin]))
            server.start()
            url = server.url + "/simple"
        servers.append(server)
        mirrors.append({"name": "m%03d" % index, "url": url, "insecure": True, "dead": bool(index % 2)})
    return servers, mirrors


def as_input(mirrors):
    return [{"name": m["name"], "url": m["url"], "insecure": m["insecure"]} for m in mirrors]


def timed_probe(mirrors, deadline, require=None):
    started = time.monotonic()
    out = run_probe("pypi", as_input(mirrors), deadline, require=require)
    elapsed = time.monotonic() - started
    wrong = sum(1 for m, r in zip(mirrors, out["results"]) if r["healthy"] == m["dead"])
    return elapsed, wrong


def sequential_baseline(mirrors, deadline, budget_s):
    """One mirror at a time, each with timeout D. Returns (seconds, estimated?)."""
    total, dead_costs, estimated = 0.0, [], False
    for mirror in mirrors:
        if mirror["dead"] and dead_costs and total + deadline > budget_s:
            estimated = True
            total += statistics.mean(dead_costs)
            continue
        elapsed, _wrong = timed_probe([mirror], deadline)
        total += elapsed
        if mirror["dead"]:
            dead_costs.append(elapsed)
    return total, estimated


def requirement_row(mirrors, pins, deadline, runs):
    """20 mirrors, half stalling, each asked for ``pins`` pinned requirements, one deadline."""
    require = ["p%d==1.0" % pin for pin in range(pins)]
    measured = [timed_probe(mirrors, deadline, require) for _run in range(runs)]
    times = [elapsed for elapsed, _wrong in measured]
    healthy = [mirror for mirror in mirrors if not mirror["dead"]]
    healthy_times = [timed_probe(healthy, deadline, require)[0] for _run in range(runs)]
    return {
        "mirrors": len(mirrors), "dead": sum(1 for m in mirrors if m["dead"]), "pins": pins, "deadline_s": deadline,
        "probe_s_median": round(statistics.median(times), 3), "probe_s_max": round(max(times), 3),
        "ratio_max_to_deadline": round(max(times) / deadline, 3),
        "healthy_only_ms_median": round(statistics.median(healthy_times) * 1000, 1),
        "misclassified": max(wrong for _elapsed, wrong in measured),
    }


def main(argv=None):
    args = parse_args(argv)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        os.environ.pop(var, None)  # loopback must stay direct
    deadline = args.deadline
    largest = args.sizes[-1]

    servers, all_mirrors = start_mirrors(max(largest, PIN_ROW_MIRRORS if args.pins else 0), args.pins)
    healthy_pool = [m for m in all_mirrors if not m["dead"]]
    rows = []
    try:
        dead_total = sum(n // 2 for n in args.sizes)
        budget_per_dead = BASELINE_BUDGET_S / max(dead_total, 1)
        for size in args.sizes:
            mirrors = all_mirrors[:size]
            dead = sum(1 for m in mirrors if m["dead"])
            runs = [timed_probe(mirrors, deadline) for _run in range(args.runs)]
            times = [elapsed for elapsed, _wrong in runs]
            wrong = max(w for _elapsed, w in runs)
            # all healthy: N names over the healthy servers (reused round robin)
            fine = [dict(healthy_pool[i % len(healthy_pool)], name="ok%03d" % i) for i in range(size)]
            healthy_times = [timed_probe(fine, deadline)[0] for _run in range(args.runs)]
            baseline, estimated = sequential_baseline(mirrors, deadline, budget_per_dead * dead + 5)
            median = statistics.median(times)
            rows.append({
                "mirrors": size, "dead": dead, "deadline_s": deadline,
                "probe_s_median": round(median, 3), "probe_s_max": round(max(times), 3),
                "ratio_to_deadline": round(median / deadline, 3),
                "ratio_max_to_deadline": round(max(times) / deadline, 3),
                "all_healthy_ms_median": round(statistics.median(healthy_times) * 1000, 1),
                "sequential_s": round(baseline, 2), "sequential_estimated": estimated,
                "speedup": round(baseline / median, 1), "misclassified": wrong,
            })
        pin_row = requirement_row(all_mirrors[:PIN_ROW_MIRRORS], args.pins, deadline, args.runs) if args.pins else None
    finally:
        for server in servers:
            server.stop()

    print("mirror_probe bench: deadline D = %.1f s, half of the mirrors dead (accept, never answer)," % deadline)
    print("one mirror per address on %s1..%d, %d runs per size; python %s"
          % (BENCH_NET, largest, args.runs, sys.version.split()[0]))
    header = ("N", "dead", "probe s (median)", "probe s (max)", "ratio to D", "one-at-a-time s", "speedup",
              "all healthy ms", "wrong")
    print()
    print("%4s %5s %17s %14s %11s %16s %8s %15s %6s" % header)
    for row in rows:
        print("%4d %5d %17.3f %14.3f %11.2f %16s %7.1fx %15.1f %6d" % (
            row["mirrors"], row["dead"], row["probe_s_median"], row["probe_s_max"], row["ratio_to_deadline"],
            ("~" if row["sequential_estimated"] else "") + "%.2f" % row["sequential_s"], row["speedup"],
            row["all_healthy_ms_median"], row["misclassified"]))
    print()
    if pin_row:
        print("%4d %5d %17.3f %14.3f %11.2f   with %d pinned requirements each (require); the %d healthy alone: "
              "%.1f ms; %d wrong" % (
                  pin_row["mirrors"], pin_row["dead"], pin_row["probe_s_median"], pin_row["probe_s_max"],
                  pin_row["ratio_max_to_deadline"], pin_row["pins"], pin_row["mirrors"] - pin_row["dead"],
                  pin_row["healthy_only_ms_median"], pin_row["misclassified"]))
        print()
    last = rows[-1]
    ok = last["ratio_max_to_deadline"] <= GOAL_RATIO and all(r["misclassified"] == 0 for r in rows)
    print("goal: probe time <= %.1f x D at N=%d (worst of %d runs): %.2f -> %s" % (
        GOAL_RATIO, last["mirrors"], args.runs, last["ratio_max_to_deadline"], "PASS" if ok else "FAIL"))
    if pin_row:
        pins_ok = pin_row["ratio_max_to_deadline"] <= GOAL_RATIO and pin_row["misclassified"] == 0
        ok = ok and pins_ok
        print("goal: %d mirrors x %d pins, probe time <= %.1f x D (worst of %d runs): %.2f -> %s" % (
            pin_row["mirrors"], pin_row["pins"], GOAL_RATIO, args.runs, pin_row["ratio_max_to_deadline"],
            "PASS" if pins_ok else "FAIL"))
    print("one-at-a-time: each mirror alone with timeout D (a dead one costs D); '~' = partly estimated")
    print("wrong: mirrors classified against expectation (dead reported healthy or the reverse)")

    if args.json:
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"deadline_s": deadline, "goal_ratio": GOAL_RATIO, "rows": rows, "requirement_row": pin_row,
                       "pass": ok}, handle, indent=2)
        print("figures: %s" % os.path.relpath(args.json, ROOT))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
