# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watcher's state machine: confirm counts, failover, switch back, no flapping, politeness."""

from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.watch import (
    LEASE_SKEW_S,
    WatchError,
    fact_entry,
    lease_state,
    log_line,
    new_state,
    preference,
    probe_plan,
    reconcile,
    step,
)

CATALOG = [
    {"name": "a", "url": "http://127.0.0.1:1/simple", "insecure": True},
    {"name": "b", "url": "http://u:secret@127.0.0.1:2/simple", "insecure": True},
    {"name": "c", "url": "http://127.0.0.1:3/simple", "insecure": True},
]


def res(**health):
    """Results for the named mirrors: True = healthy, a string = the unhealthy reason."""
    out = []
    for name, value in health.items():
        out.append({"name": name, "healthy": value is True, "latency_ms": 5 if value is True else None,
                    "reason": None if value is True else value})
    return out


def run(state, results, full=True, confirm=2, pin=None, policy=None):
    return step(state, results, CATALOG, policy or {"strategy": "first_healthy"}, pin, confirm, full)


def test_healthy_chosen_mirror_is_ok_and_resets_counts():
    got = run(dict(new_state("a"), bad=1), res(a=True), full=False)
    assert got["decision"]["action"] == "ok"
    assert got["state"] == new_state("a")


def test_one_failure_is_only_suspect_under_confirm_2():
    got = run(new_state("a"), res(a="connection refused"), full=False)
    assert got["decision"]["action"] == "suspect"
    assert got["state"]["bad"] == 1 and got["state"]["current"] == "a"
    assert "1/2" in got["decision"]["reason"] and got["decision"]["selection"] is None


def test_confirmed_failure_on_a_partial_probe_asks_for_the_whole_catalog():
    state = dict(new_state("a"), bad=1)
    got = run(state, res(a="connection refused"), full=False)
    assert got["decision"]["action"] == "need_full"
    assert got["state"] == state  # unchanged: the caller calls again with the same state


def test_confirmed_failure_fails_over_to_what_mirror_selection_picks():
    got = run(dict(new_state("a"), bad=1), res(a="connection refused", b=True, c=True))
    decision = got["decision"]
    assert decision["action"] == "failover" and decision["from"] == "a" and decision["to"] == "b"
    assert decision["selection"]["url"] == CATALOG[1]["url"]  # the real URL, for the renderer only
    assert "secret" not in decision["reason"]
    assert got["state"] == new_state("b")


def test_confirm_1_switches_on_the_first_failure():
    got = run(new_state("a"), res(a="timed out after 3.0 s", b="HTTP 503", c=True), confirm=1)
    assert got["decision"]["action"] == "failover" and got["decision"]["to"] == "c"


def test_nothing_healthy_keeps_the_files():
    got = run(dict(new_state("a"), bad=1), res(a="refused", b="refused", c="refused"))
    assert got["decision"]["action"] == "all_down"
    assert got["decision"]["selection"] is None
    assert got["state"]["current"] == "a" and got["state"]["bad"] == 2


def test_preferred_mirror_back_once_is_only_a_candidate():
    got = run(new_state("b"), res(a=True, b=True), full=False)
    assert got["decision"]["action"] == "candidate" and got["decision"]["to"] == "a"
    assert got["state"]["better"] == "a" and got["state"]["better_count"] == 1


def test_preferred_mirror_healthy_for_confirm_runs_switches_back():
    state = dict(new_state("b"), better="a", better_count=1)
    assert run(state, res(a=True, b=True), full=False)["decision"]["action"] == "need_full"
    got = run(state, res(a=True, b=True, c=True))
    assert got["decision"]["action"] == "switch_back" and got["decision"]["to"] == "a"
    assert got["state"] == new_state("a")


def test_a_preferred_mirror_that_fails_again_restarts_the_count():
    state = dict(new_state("b"), better="a", better_count=1)
    got = run(state, res(a="refused", b=True), full=False)
    assert got["decision"]["action"] == "ok"
    assert got["state"]["better"] is None and got["state"]["better_count"] == 0


def test_less_preferred_mirrors_never_pull_the_service_away():
    got = run(new_state("a"), res(a=True, b=True, c=True))
    assert got["decision"]["action"] == "ok"


def test_fastest_strategy_never_switches_between_equal_ranks():
    state = dict(new_state("c"), better="a", better_count=5)
    got = run(state, res(a=True, b=True, c=True), policy={"strategy": "fastest"})
    assert got["decision"]["action"] == "ok"


def test_the_pin_is_preferred_over_catalog_order():
    assert preference(CATALOG, pin="c")["c"] < preference(CATALOG, pin="c")["a"]
    state = dict(new_state("a"), better="c", better_count=1)
    got = run(state, res(a=True, b=True, c=True), pin="c")
    assert got["decision"]["action"] == "switch_back" and got["decision"]["to"] == "c"
    assert got["decision"]["selection"]["status"] == "pinned"


def test_no_current_choice_does_nothing():
    got = run(new_state(None), res(a=True, b=True, c=True))
    assert got["decision"]["action"] == "none"
    assert "site.yml" in got["decision"]["reason"]


def test_probe_plan_is_polite():
    assert probe_plan(new_state("a"), CATALOG) == {"names": ["a"], "full": False}
    assert probe_plan(new_state("c"), CATALOG) == {"names": ["a", "b", "c"], "full": True}
    assert probe_plan(new_state("b"), CATALOG) == {"names": ["a", "b"], "full": False}
    assert probe_plan(dict(new_state("a"), bad=1), CATALOG)["full"] is True
    assert probe_plan(new_state(None), CATALOG)["full"] is True
    assert probe_plan(new_state("gone"), CATALOG)["full"] is True
    assert probe_plan(new_state("c"), CATALOG, strategy="fastest")["names"] == ["c"]


def test_reconcile_adopts_what_ansible_recorded():
    state, adopted = reconcile(dict(new_state("b"), bad=1), "a")
    assert adopted and state == new_state("a")
    state, adopted = reconcile(dict(new_state("a"), bad=1), "a")
    assert not adopted and state["bad"] == 1


def test_confirm_must_be_a_positive_whole_number():
    with pytest.raises(WatchError, match="mirror_watch_confirm"):
        run(new_state("a"), res(a=True), confirm=0)


def test_fact_entry_and_log_line_hold_no_credentials():
    got = run(dict(new_state("a"), bad=1), res(a="connection refused", b=True, c=True))
    entry = fact_entry(got["decision"]["selection"])
    assert entry == {"name": "b", "status": "ok", "url_masked": "http://***@127.0.0.1:2/simple"}
    line = log_line("pypi", got["decision"], ["/etc/pip.conf"], ["reloaded docker"])
    assert line.startswith("pypi: failover a -> b (a: connection refused (2/2 runs)")
    assert "wrote /etc/pip.conf" in line and "secret" not in line


@pytest.mark.parametrize("age, expected", [
    (0, "fresh"), (1800, "fresh"), (1800.5, "expired"), (-LEASE_SKEW_S, "fresh"),
    (-LEASE_SKEW_S - 0.5, "future"), (-86400, "future"),
])
def test_a_lease_is_fresh_from_skew_ahead_to_its_length_old(age, expected):
    assert lease_state(10000.0 - age, 10000.0, 1800) == expected
    assert LEASE_SKEW_S == 60


def test_a_deferred_switch_says_why_in_its_line():
    decision = {"action": "failover", "from": "a", "to": "b", "reason": "a: refused (2/2 runs)", "deferred": "x is held"}
    assert log_line("pypi", decision, notes=["retried next run"]) == \
        "pypi: deferred failover a -> b (a: refused (2/2 runs)); switch deferred: x is held; retried next run"
