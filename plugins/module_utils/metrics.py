# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus text files for node_exporter's textfile collector: the collection's one metrics writer.

Every writer (the mirror watcher, the modules that probe and write, the cache node's metrics
command, the GPU health command) builds *families* with :func:`family`, renders them with
:func:`render` and writes one ``.prom`` file per concern with :func:`write_prom`:

* the text follows the exposition format node_exporter's textfile collector reads: ``# HELP`` and
  ``# TYPE`` once per family, label values escaped, **no timestamps** (the collector rejects a file
  that carries one), families and series in a stable order (an unchanged state renders the same bytes);
* names follow Prometheus' rules (checked here, so a bad name is a bug caught by the unit tests,
  never a file node_exporter drops): counters end in ``_total``, ``_info`` series are 1;
* a label value that holds a URL is masked (:func:`mirror_url.mask_url`): never a credential;
* the file is replaced atomically (a temporary ``.gpulab.*`` file in the same directory, which
  node_exporter does not read, then ``rename``): a reader sees the old file or the new one, and a
  full disk leaves the previous file as it was.

Counters and last-success timestamps outlive one run: a concern keeps its state in a JSON file of
its own in the same directory (``.gpulab-<concern>.json``, not read by node_exporter), updated under
an ``flock`` on ``.gpulab-<concern>.lock`` by :func:`update_state`, so two writers of one concern
(the watcher and an Ansible run) never lose each other's counts.

A metrics directory that is missing or not writable is never fatal: :func:`write_prom` raises
:class:`MetricsError` with one line naming ``gpulab_metrics_dir`` and the fix, and callers turn
it into a warning; mirror switching goes on.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re

from ansible_collections.gpulab.provision.plugins.module_utils.atomic_file import replace_text
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import mask_url

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
KINDS = ("gauge", "counter")
PREFIX = "gpulab_"
# The variable every message names: the roles pass it to each writer.
VARIABLE = "gpulab_metrics_dir"
# Debian's prometheus-node-exporter reads this directory (--collector.textfile.directory).
DEBIAN_TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
STATE_VERSION = 1


class MetricsError(Exception):
    """A metrics file could not be written or a metric is malformed; the message is one line."""


def family(name, kind, help_text, samples=None):
    """One metric family: ``samples`` is a list of ``(labels dict, value)``; checked by :func:`render`."""
    return {"name": name, "kind": kind, "help": help_text, "samples": list(samples or [])}


def escape_label(value):
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def escape_help(text):
    """HELP text: backslash and newline escaped."""
    return str(text).replace("\\", "\\\\").replace("\n", "\\n")


def label_value(value):
    """What a label carries: text, with any URL credential masked (``None`` is the empty string)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return mask_url(text) if "://" in text else text


def format_value(value):
    """A sample value in the text format (Go's float forms for NaN and the infinities)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def check_family(fam):
    """Problems of one family (names, kind, labels, duplicate series); an empty list when sound."""
    problems = []
    name, kind = fam.get("name"), fam.get("kind")
    if not isinstance(name, str) or not METRIC_NAME.match(name) or not name.startswith(PREFIX):
        problems.append("metric name %r: must match %s and start with %s" % (name, METRIC_NAME.pattern, PREFIX))
    if kind not in KINDS:
        problems.append("%s: kind %r must be one of %s" % (name, kind, ", ".join(KINDS)))
    if kind == "counter" and isinstance(name, str) and not name.endswith("_total"):
        problems.append("%s: a counter's name ends in _total" % name)
    if kind != "counter" and isinstance(name, str) and name.endswith("_total"):
        problems.append("%s: only a counter's name ends in _total" % name)
    if not fam.get("help"):
        problems.append("%s: HELP text is required" % name)
    seen = set()
    for labels, value in fam.get("samples") or []:
        for key in labels:
            if not LABEL_NAME.match(str(key)) or str(key).startswith("__"):
                problems.append("%s: label name %r is not a Prometheus label name" % (name, key))
        series = tuple(sorted((str(k), label_value(v)) for k, v in labels.items()))
        if series in seen:
            problems.append("%s: series %s appears twice" % (name, dict(series)))
        seen.add(series)
        if isinstance(name, str) and name.endswith("_info") and value != 1:
            problems.append("%s: an _info series is 1, got %r" % (name, value))
        if kind == "counter" and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
            problems.append("%s: a counter is a number >= 0, got %r" % (name, value))
    return problems


def render(families):
    """The text of one ``.prom`` file: families sorted by name, series by labels, no timestamps.

    A family without samples is left out (no dangling HELP/TYPE). :raises MetricsError: a
    malformed family (a bug in the caller: the unit tests render every family the collection writes).
    """
    names = [fam.get("name") for fam in families]
    problems = ["metric %s is defined twice" % name for name in sorted(set(n for n in names if names.count(n) > 1))]
    for fam in families:
        problems.extend(check_family(fam))
    if problems:
        raise MetricsError("; ".join(problems))
    lines = []
    for fam in sorted(families, key=lambda f: f["name"]):
        if not fam["samples"]:
            continue
        lines.append("# HELP %s %s" % (fam["name"], escape_help(fam["help"])))
        lines.append("# TYPE %s %s" % (fam["name"], fam["kind"]))
        rows = []
        for labels, value in fam["samples"]:
            pairs = sorted((str(k), label_value(v)) for k, v in labels.items())
            text = ",".join('%s="%s"' % (k, escape_label(v)) for k, v in pairs)
            rows.append((pairs, "%s{%s} %s" % (fam["name"], text, format_value(value)) if text
                         else "%s %s" % (fam["name"], format_value(value))))
        lines.extend(row for _pairs, row in sorted(rows, key=lambda r: r[0]))
    return "\n".join(lines) + "\n" if lines else ""


# --------------------------------------------------------------------------------------------
# Files


def dir_problem(directory):
    """Why ``directory`` cannot take metrics files (one line naming gpulab_metrics_dir), or None."""
    if not isinstance(directory, str) or not directory.startswith("/"):
        return "%s: %r must be an absolute directory path (empty turns metrics off)" % (VARIABLE, directory)
    if not os.path.isdir(directory):
        return ("%s: %s does not exist or is not a directory; create it (the role gpulab.provision.metrics does) "
                "or set %s to the directory node_exporter's --collector.textfile.directory reads"
                % (VARIABLE, directory, VARIABLE))
    if not os.access(directory, os.W_OK | os.X_OK):
        return "%s: %s is not writable by uid %d; make it writable for root or set %s to another directory" % (
            VARIABLE, directory, os.geteuid(), VARIABLE)
    return None


def prom_path(directory, concern):
    """The ``.prom`` file of a concern: ``<directory>/gpulab_<concern>.prom``."""
    if not re.match(r"^[a-z][a-z0-9_]*$", concern or ""):
        raise MetricsError("concern %r: lowercase letters, digits and _ only" % (concern,))
    return os.path.join(directory, "gpulab_%s.prom" % concern)


def _oserror_text(exc):
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return "no space left on the device; the previous file is kept"
    return "%s; the previous file is kept" % (getattr(exc, "strerror", None) or exc)


def write_prom(directory, concern, families, check=False):
    """Render ``families`` and replace ``<directory>/gpulab_<concern>.prom`` atomically.

    Returns True when the file's content changed (or would, in ``check``). Writes nothing when the
    text is unchanged. :raises MetricsError: the directory is unusable or the write failed (one
    line naming gpulab_metrics_dir; the previous file is left intact).
    """
    text = render(families)
    problem = dir_problem(directory)
    if problem:
        raise MetricsError(problem)
    path = prom_path(directory, concern)
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    if check:
        return True
    try:
        replace_text(path, text, mode=0o644)
    except OSError as exc:
        raise MetricsError("%s: cannot write %s: %s" % (VARIABLE, path, _oserror_text(exc)))
    return True


class _StateLock:
    """``flock`` on ``<directory>/.gpulab-<concern>.lock`` (created 0600); a no-op where flock is missing."""

    def __init__(self, directory, concern):
        self.path = os.path.join(directory, ".gpulab-%s.lock" % concern)
        self.fd = None

    def __enter__(self):
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            self.fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise MetricsError("%s: cannot open the lock %s: %s" % (VARIABLE, self.path, exc.strerror or exc))
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        return False


def state_path(directory, concern):
    return os.path.join(directory, ".gpulab-%s.json" % concern)


def read_state(directory, concern):
    """A concern's saved state (``{}`` when missing or unusable: a counter then starts again at 0,
    which Prometheus' ``rate``/``increase`` read as a reset)."""
    try:
        with open(state_path(directory, concern), encoding="utf-8") as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict) or saved.get("version") != STATE_VERSION:
        return {}
    return saved.get("data") if isinstance(saved.get("data"), dict) else {}


def update_state(directory, concern, update, check=False):
    """Under the concern's lock: ``data = update(saved data)``; save it (unless ``check``) and
    write the concern's ``.prom`` file from ``families_of(data)`` which ``update`` returns.

    ``update(data)`` returns ``(new_data, families)``. Returns whether the ``.prom`` file changed.
    :raises MetricsError: one line naming gpulab_metrics_dir (nothing half-written).
    """
    problem = dir_problem(directory)
    if problem:
        raise MetricsError(problem)
    with _StateLock(directory, concern):
        data, families = update(read_state(directory, concern))
        if not check:
            text = json.dumps({"version": STATE_VERSION, "data": data}, sort_keys=True, separators=(",", ":")) + "\n"
            try:
                replace_text(state_path(directory, concern), text, mode=0o600)
            except OSError as exc:
                raise MetricsError("%s: cannot write %s: %s"
                                   % (VARIABLE, state_path(directory, concern), _oserror_text(exc)))
        return write_prom(directory, concern, families, check)


def counter_add(counters, key, amount=1):
    """Add ``amount`` to ``counters[key]`` (a JSON-able dict: ``key`` is a string); returns the dict."""
    counters[key] = int(counters.get(key, 0)) + int(amount)
    return counters


def series_key(labels):
    """A stable string key for a label set (counters are saved in JSON under it)."""
    return json.dumps({str(k): "" if v is None else str(v) for k, v in labels.items()}, sort_keys=True,
                      separators=(",", ":"))


def key_labels(key):
    """The label set back from :func:`series_key`."""
    try:
        labels = json.loads(key)
    except ValueError:
        return None
    return labels if isinstance(labels, dict) else None
