# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PyPI mirror health: a project's simple page (PEP 503 HTML or PEP 691 JSON), its serial, the
bandersnatch sync stamp, and the pinned requirements (``name==version``) the lab needs.

Standard library only; runs on the managed host.
"""

from __future__ import annotations

import functools
import json
import re

from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit, urlunsplit

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import join_path
from ansible_collections.gpulab.provision.plugins.module_utils.probe_freshness import bandersnatch_time
from ansible_collections.gpulab.provision.plugins.module_utils.probe_require import filename_of, parse_pypi, pypi_lists
from ansible_collections.gpulab.provision.plugins.module_utils.probe_session import text_of
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import Verdict
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import header

PYPI_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar", ".egg", ".exe", ".msi", ".rpm")

_SERIAL_COMMENT = re.compile(r"<!--\s*SERIAL\s+(\d+)\s*-->", re.IGNORECASE)
# PyPI's serial is about 8 digits; a longer "serial" is no serial (and int() refuses over 4300 digits).
MAX_SERIAL_DIGITS = 18


def normalize_project(name):
    """PEP 503 name normalization: ``Zope.Interface`` -> ``zope-interface``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def probe_url(base_url, options):
    return join_path(base_url, normalize_project(options["project"]), "")


class _AnchorParser(HTMLParser):
    def __init__(self):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.hrefs = []
        self.serial = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            for key, value in attrs:
                if key == "href" and value:
                    self.hrefs.append(value)

    def handle_comment(self, data):
        match = re.match(r"\s*SERIAL\s+(\d+)\s*$", data, re.IGNORECASE)
        if match and self.serial is None:
            self.serial = _int_or_none(match.group(1))


def _is_project_file(href, project):
    filename = unquote(urlsplit(href).path.rsplit("/", 1)[-1]).lower()
    if not filename.endswith(DIST_SUFFIXES):
        return False
    return normalize_project(filename).startswith(project + "-")


def _int_or_none(value):
    """A serial from a header, a JSON field or a comment; None when it is not a plausible one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 10 ** MAX_SERIAL_DIGITS else None
    text = str(value).strip() if isinstance(value, str) else ""
    if not text.isdigit() or not text.isascii() or len(text) > MAX_SERIAL_DIGITS:
        return None
    return int(text)


def classify_pypi(status, headers, body, project="pip"):
    """PEP 691 JSON with files, or PEP 503 HTML linking at least one file of ``project``."""
    if not 200 <= status < 300:
        return Verdict(False, "HTTP %d" % status)
    project = normalize_project(project)
    header_serial = _int_or_none(header(headers, "X-PyPI-Last-Serial"))
    content_type = (header(headers, "Content-Type") or "").lower()
    text = text_of(body)
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return Verdict(False, "not a PyPI simple page")
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            return Verdict(False, "not a PyPI simple page")
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        serial = _int_or_none(meta.get("_last-serial"))
        if serial is None:
            serial = header_serial
        if not data["files"]:
            return Verdict(False, "no files listed for %s" % project, serial)
        return Verdict(True, serial=serial)
    parser = _AnchorParser()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # HTMLParser is lenient; anything it still chokes on is not a simple page
        return Verdict(False, "not a PyPI simple page")
    serial = parser.serial
    if serial is None:
        match = _SERIAL_COMMENT.search(text)
        serial = _int_or_none(match.group(1)) if match else header_serial
    if not any(_is_project_file(href, project) for href in parser.hrefs):
        return Verdict(False, "not a PyPI simple page", serial)
    return Verdict(True, serial=serial)


def bandersnatch_stamp_url(base_url):
    """bandersnatch writes ``<web>/last-modified`` next to ``<web>/simple``; None for other layouts."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if not path.endswith("/simple"):
        return None
    return urlunsplit(parts._replace(path=path[:-len("simple")] + "last-modified"))


def listed_files(headers, body):
    """The filenames a simple page lists (PEP 691 ``files[].filename`` or PEP 503 links)."""
    text = text_of(body)
    content_type = (header(headers, "Content-Type") or "").lower()
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return []
        files = data.get("files") if isinstance(data, dict) else None
        return [item["filename"] for item in files or [] if isinstance(item, dict) and isinstance(item.get("filename"), str)]
    parser = _AnchorParser()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # an unreadable page lists nothing
        return []
    return [filename_of(href) for href in parser.hrefs]


def check_require(items):
    """Parsed ``require`` items, or RequirementError naming the first bad one."""
    return [parse_pypi(item) for item in items]


def _main(session, options):
    url = probe_url(session.mirror.base_url, options)
    resp, body = session.get(url, {"Accept": PYPI_ACCEPT}, what="simple page")
    return classify_pypi(resp.status, resp.headers, body, options["project"])


def _stamp(session, url):
    resp, body = session.get(url, cap=256, what="last-modified", truncate=True)
    return bandersnatch_time(text_of(body)) if 200 <= resp.status < 300 else None


def _lacks(session, name, version):
    """None when the mirror lists a file of name==version, else the evidence."""
    url = join_path(session.mirror.base_url, name, "")
    resp, body = session.get(url, {"Accept": PYPI_ACCEPT}, what="simple page of %s" % name)
    if not 200 <= resp.status < 300:
        return "%s==%s (HTTP %d for %s)" % (name, version, resp.status, name)
    if pypi_lists(listed_files(resp.headers, body), name, version):
        return None
    return "%s==%s" % (name, version)


def check(session, options):
    """The project's simple page; when it is healthy, every pin (and, under ``max_age_h``, the
    bandersnatch stamp) at once."""
    verdict = _main(session, options)
    if not verdict.healthy:
        return verdict
    calls = []
    # one more request per mirror, so only where an age policy asks for it
    stamp_url = bandersnatch_stamp_url(session.mirror.base_url) if options.get("max_age_h") is not None else None
    if stamp_url:
        calls.append(lambda: _stamp(session, stamp_url))
    wanted = check_require(options.get("require") or [])
    calls.extend(functools.partial(_lacks, session, name, version) for name, version in wanted)
    answers = session.parallel(calls) if calls else []
    if stamp_url:
        verdict.updated = answers.pop(0)
    lacking = [item for item in answers if item]
    if lacking:
        return Verdict(False, "lacks " + ", ".join(lacking), verdict.serial, verdict.updated)
    return verdict
