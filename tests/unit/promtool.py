"""promtool (Debian's prometheus package, installed by scripts/host-deps.sh) for the metrics tests.

``check_metrics(text)``: ``promtool check metrics`` on a file's text, asserting it finds no problem
(lint included). ``test_rules(path)``: ``promtool test rules``. Without promtool the test is
skipped on a developer's machine and FAILS under CI (CI=true), where host-deps installed it.
"""
import os
import shutil
import subprocess

import pytest


def promtool():
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/host-deps.sh installs Debian's prometheus package")
        pytest.skip("promtool is not installed (make host installs it)")
    return path


def check_metrics(text):
    """Run ``promtool check metrics`` on ``text``; fail the test with its output on any problem."""
    done = subprocess.run([promtool(), "check", "metrics"], input=text.encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, check=False)
    out = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0 and not out.strip(), "promtool check metrics: rc=%d\n%s\n--- text:\n%s" % (
        done.returncode, out, text)
    return out


def test_rules(path):  # noqa: PT028  (not a test: a helper the rule tests call)
    done = subprocess.run([promtool(), "test", "rules", path], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=120, check=False)
    return done.returncode, done.stdout.decode("utf-8", "replace")


test_rules.__test__ = False
