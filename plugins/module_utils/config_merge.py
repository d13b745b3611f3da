# -*- coding: utf-8 -*-
# Copyright: gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure merges for the client configuration files the mirror roles own or share.

Every function takes the file's current text (empty string for a missing file) and returns the new
text. They never touch the file system, so the roles can run them on the controller and hand the
result to ``ansible.builtin.copy`` (atomic, backup, check mode and diff for free).

Two promises matter to the roles:

* An existing file that does not parse raises :class:`ConfigMergeError` naming the file and the fix;
  the role fails and the file stays as it was.
* When the merge changes nothing, the original text is returned byte for byte, so a re-run (or a
  failover that keeps the last good mirror) leaves the file identical.
"""

from __future__ import annotations

import configparser
import copy
import json
import re
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None


class ConfigMergeError(ValueError):
    """An existing configuration file, or the requested settings, cannot be merged."""


def _plain(value):
    """Copy into plain builtin types (Ansible hands over str/dict/list subclasses PyYAML refuses)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


# --------------------------------------------------------------------------------------------------
# pip.conf (INI, read by pip with configparser.RawConfigParser)
# --------------------------------------------------------------------------------------------------

_SECTION_RE = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*(?:[#;].*)?$")
_KEY_RE = re.compile(r"^(?P<key>[^\s=:#;\[][^=:]*?)\s*[=:]")


def _pip_key(name):
    """pip normalises option names: case-insensitive, ``_`` and ``-`` are the same."""
    return name.strip().lower().replace("_", "-")


def _render_ini_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
        if len(items) == 1:
            return items[0]
        # pip splits multi-valued options on whitespace; one per line reads best.
        return "\n" + "\n".join("    " + v for v in items)
    return str(value)


def _ini_value_equal(current, wanted):
    """Compare a parsed INI value with the value we would write (whitespace-insensitive)."""
    if current is None:
        return False
    return current.split() == _render_ini_value(wanted).split()


def pip_conf_parse(text, path="pip.conf"):
    """Parse pip.conf text into ``{section: {key: value}}`` with pip's key normalisation.

    Raises ConfigMergeError when the text is not an INI file pip could read.
    """
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text or "", source=path)
    except configparser.Error as exc:
        raise ConfigMergeError(
            "%s is not a valid INI file, so pip cannot read it either (%s). Fix or remove it, "
            "then re-run; the file was left untouched." % (path, str(exc).splitlines()[0])
        )
    result = {}
    for section in parser.sections():
        result[section] = {_pip_key(k): v for k, v in parser.items(section)}
    return result


def pip_conf_merge(text, settings, section="global", path="pip.conf"):
    """Set (or, with a ``None`` value, remove) ``settings`` in ``section`` of pip.conf text.

    Everything else is kept as written: other sections, other keys, comments, blank lines. A key
    whose value already matches keeps its original line.
    """
    if not isinstance(settings, dict):
        raise ConfigMergeError("settings for %s must be a dict, got %s" % (path, type(settings).__name__))
    parsed = pip_conf_parse(text, path)
    current = parsed.get(section, {})
    wanted = {_pip_key(k): v for k, v in settings.items()}

    todo = {}
    for key, value in wanted.items():
        if value is None:
            if key in current:
                todo[key] = None
        elif not _ini_value_equal(current.get(key), value):
            todo[key] = value
    if not todo:
        return text or ""

    lines = (text or "").splitlines()
    # Locate our section and each key's line span (a key line plus its indented continuations).
    in_section = False
    section_start = section_end = None
    spans = {}
    open_key = None
    for idx, line in enumerate(lines):
        match = _SECTION_RE.match(line)
        if match:
            if in_section:
                section_end = idx
            in_section = match.group("name").strip() == section
            if in_section:
                section_start = idx
                section_end = None
            open_key = None
            continue
        if not in_section:
            continue
        if open_key and line[:1] in (" ", "\t") and line.strip():
            spans[open_key][1] = idx + 1
            continue
        open_key = None
        key_match = _KEY_RE.match(line)
        if key_match:
            open_key = _pip_key(key_match.group("key"))
            spans[open_key] = [idx, idx + 1]
    if section_start is not None and section_end is None:
        section_end = len(lines)

    def render(key, value):
        return ("%s = %s" % (key, _render_ini_value(value))).replace(" = \n", " =\n").splitlines()

    if section_start is None:
        new_lines = list(lines)
        while new_lines and not new_lines[-1].strip():
            new_lines.pop()
        if new_lines:
            new_lines.append("")
        new_lines.append("[%s]" % section)
        for key, value in todo.items():
            if value is not None:
                new_lines.extend(render(key, value))
        return "\n".join(new_lines) + "\n"

    # Edit from the bottom up so earlier indexes stay valid.
    replacements = []
    appended = []
    for key, value in todo.items():
        if key in spans:
            start, end = spans[key]
            replacements.append((start, end, [] if value is None else render(key, value)))
        elif value is not None:
            appended.extend(render(key, value))
    new_lines = list(lines)
    if appended:
        insert_at = section_end
        while insert_at > section_start + 1 and not new_lines[insert_at - 1].strip():
            insert_at -= 1
        replacements.append((insert_at, insert_at, appended))
    for start, end, repl in sorted(replacements, key=lambda r: r[0], reverse=True):
        new_lines[start:end] = repl
    return "\n".join(new_lines) + "\n"


# --------------------------------------------------------------------------------------------------
# .condarc (YAML mapping)
# --------------------------------------------------------------------------------------------------

def condarc_parse(text, path=".condarc"):
    """Parse .condarc text into a dict (empty text gives ``{}``)."""
    if yaml is None:  # pragma: no cover
        raise ConfigMergeError("PyYAML is required to merge %s" % path)
    try:
        data = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        raise ConfigMergeError(
            "%s is not valid YAML, so conda cannot read it either (%s). Fix or remove it, then "
            "re-run; the file was left untouched." % (path, " ".join(str(exc).split()))
        )
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigMergeError(
            "%s must be a YAML mapping (key: value), found a %s. Fix or remove it, then re-run; the "
            "file was left untouched." % (path, type(data).__name__)
        )
    return data


def condarc_merge(text, settings, merge_keys=("custom_channels",), path=".condarc"):
    """Set ``settings`` in .condarc text; keys in ``merge_keys`` are merged one level deep.

    ``custom_channels`` is merged so the user's own channels survive while ours are overridden.
    A ``None`` value removes the key. Comments are not preserved when the file changes (PyYAML
    does not keep them); an unchanged file is returned byte for byte.
    """
    if not isinstance(settings, dict):
        raise ConfigMergeError("settings for %s must be a dict, got %s" % (path, type(settings).__name__))
    current = condarc_parse(text, path)
    merged = copy.deepcopy(current)
    for key, value in _plain(settings).items():
        if value is None:
            merged.pop(key, None)
        elif key in merge_keys and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = dict(merged[key], **value)
        else:
            merged[key] = copy.deepcopy(value)
    if merged == current:
        return text or ""
    return yaml.safe_dump(merged, default_flow_style=False, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------------------------------
# /etc/docker/daemon.json (JSON object)
# --------------------------------------------------------------------------------------------------

# Keys dockerd re-reads on SIGHUP (docs: "Configuration reload behavior"); changing only these
# needs a reload, never a restart.
DAEMON_JSON_RELOADABLE = frozenset([
    "debug", "labels", "live-restore", "max-concurrent-downloads", "max-concurrent-uploads",
    "max-download-attempts", "default-runtime", "runtimes", "authorization-plugins",
    "insecure-registries", "registry-mirrors", "allow-nondistributable-artifacts",
    "shutdown-timeout", "features", "builder", "default-shm-size", "default-ulimits",
])

_DAEMON_TYPES = {
    "registry-mirrors": list,
    "insecure-registries": list,
    "live-restore": bool,
    "debug": bool,
    "runtimes": dict,
    "default-runtime": str,
    "log-driver": str,
    "log-opts": dict,
    "data-root": str,
    "storage-driver": str,
    "exec-opts": list,
    "dns": list,
    "max-concurrent-downloads": int,
    "max-concurrent-uploads": int,
    "features": dict,
}


_TYPE_NAMES = {list: "list", dict: "object", bool: "boolean", str: "string", int: "integer"}


def daemon_json_parse(text, path="/etc/docker/daemon.json"):
    """Parse daemon.json text into a dict (empty or blank text gives ``{}``)."""
    if not (text or "").strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigMergeError(
            "%s is not valid JSON (%s), so dockerd would refuse to start with it. Fix or remove "
            "it, then re-run; the file was left untouched." % (path, exc)
        )
    if not isinstance(data, dict):
        raise ConfigMergeError(
            "%s must hold a JSON object, found %s. Fix or remove it, then re-run; the file was "
            "left untouched." % (path, type(data).__name__)
        )
    return data


def _deep_merge(base, layer):
    out = copy.deepcopy(base)
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _mirror_error(url):
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except (ValueError, AttributeError):
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "needs an http:// or https:// scheme and a host"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "must be scheme://host[:port] with no path (dockerd rejects a path)"
    return None


def daemon_json_validate(data, path="/etc/docker/daemon.json"):
    """Check the keys dockerd would reject at start; return ``data`` or raise ConfigMergeError."""
    problems = []
    if not isinstance(data, dict):
        raise ConfigMergeError("%s: configuration must be a JSON object" % path)
    for key, kind in _DAEMON_TYPES.items():
        if key in data and not (isinstance(data[key], kind) and not (kind is int and isinstance(data[key], bool))):
            problems.append("%s must be a %s" % (key, _TYPE_NAMES[kind]))
    for url in data.get("registry-mirrors", []) if isinstance(data.get("registry-mirrors"), list) else []:
        error = _mirror_error(url) if isinstance(url, str) else "is not a string"
        if error:
            problems.append("registry-mirrors entry %r %s" % (url, error))
    runtimes = data.get("runtimes") if isinstance(data.get("runtimes"), dict) else {}
    for name, spec in runtimes.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec.get("path"):
            problems.append("runtimes.%s needs a non-empty string 'path'" % name)
        elif "args" in spec and not isinstance(spec["args"], list):
            problems.append("runtimes.%s.args must be a list" % name)
    default_runtime = data.get("default-runtime")
    if isinstance(default_runtime, str) and default_runtime not in ("runc", "io.containerd.runc.v2") \
            and default_runtime not in runtimes:
        problems.append("default-runtime %r is not defined in runtimes" % default_runtime)
    if problems:
        raise ConfigMergeError("%s would be invalid: %s" % (path, "; ".join(problems)))
    return data


def daemon_json_merge(text, managed=None, fragments=None, extra=None, path="/etc/docker/daemon.json"):
    """Merge daemon.json: existing keys <- fragments (by name) <- extra <- managed; validate.

    ``fragments`` is ``{name: {daemon.json keys}}`` from other roles (merged in name order),
    ``extra`` the user's keys, ``managed`` the keys this collection owns (``registry-mirrors``,
    ``live-restore``, ...). Objects merge recursively, everything else is replaced; keys nobody
    mentions are kept. A ``None`` value in ``managed`` removes the key. Returns the new text (two-
    space indented JSON, existing key order first) or the original text when nothing changed.
    """
    current = daemon_json_parse(text, path)
    merged = copy.deepcopy(current)
    managed, fragments, extra = _plain(managed), _plain(fragments), _plain(extra)
    for name in sorted((fragments or {}).keys()):
        fragment = fragments[name]
        if not isinstance(fragment, dict):
            raise ConfigMergeError("daemon.json fragment %r must be a dict" % name)
        merged = _deep_merge(merged, fragment)
    if extra:
        if not isinstance(extra, dict):
            raise ConfigMergeError("extra daemon.json config must be a dict")
        merged = _deep_merge(merged, extra)
    for key, value in (managed or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = copy.deepcopy(value)
    daemon_json_validate(merged, path)
    if merged == current and (text or "").strip():
        return text
    return json.dumps(merged, indent=2, ensure_ascii=False) + "\n"


_MISSING = object()


def daemon_json_changed_keys(old_text, new_text, path="/etc/docker/daemon.json"):
    """Top-level keys whose value differs between two daemon.json texts (sorted)."""
    old = daemon_json_parse(old_text, path)
    new = daemon_json_parse(new_text, path)
    return sorted(k for k in set(old) | set(new) if old.get(k, _MISSING) != new.get(k, _MISSING))


def daemon_json_needs_restart(old_text, new_text, path="/etc/docker/daemon.json"):
    """True when a changed key is not one dockerd reloads on SIGHUP."""
    return any(k not in DAEMON_JSON_RELOADABLE for k in daemon_json_changed_keys(old_text, new_text, path))
