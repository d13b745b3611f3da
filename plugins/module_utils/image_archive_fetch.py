# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Download one archive on the managed host, resuming an interrupted transfer, verified by SHA-256.

The bytes land in ``<partial_dir>/<name of dest>.part`` (same file system as ``dest``). A ``.part``
left by an earlier, interrupted run or attempt is resumed with an HTTP Range request; a server that
ignores Range (200) makes the download start over, one that refuses it (416) leaves the checksum to
decide. Once complete, the file's SHA-256 is compared with the expected one; on a match the file is
renamed onto ``dest`` (atomic), on a mismatch the ``.part`` is removed and the download fails.

The URL may carry credentials (``https://user:pw@host/...``) or a token in its query string: every
message this file returns or raises goes through the collection's one masking function
(``mirror_url.SecretMasker``), so neither is ever shown.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.error

from urllib.parse import unquote, urlsplit, urlunsplit

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import SSLValidationError, open_url

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_digest import hash_file, parse_checksum
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import SecretMasker, mask_url

CHUNK = 1 << 20
# Answers that another attempt will not change.
_FINAL_HTTP = (401, 403, 404, 410)
_TRANSIENT = (OSError, ValueError, http.client.HTTPException, UrlsConnectionError, SSLValidationError)


def check_fetch_url(url):
    """Refuse what cannot be downloaded safely, without ever showing the URL (it may carry secrets).

    A query string is allowed (a token the file server wants); credentials must be percent-encoded:
    a password with an unencoded ``/``, ``#`` or ``?`` would be split by every URL parser and parts
    of it sent as the host, port or path.
    """
    try:
        parts = urlsplit(url)
        parts.port  # pylint: disable=pointless-statement  # raises ValueError on a bad port
    except ValueError:
        raise ImageArchiveError("url does not parse (it is not shown: it may carry credentials)", kind="invalid")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ImageArchiveError("url must be an http:// or https:// URL with a host (it is not shown: it may carry "
                                "credentials)", kind="invalid")
    if "@" not in parts.netloc and "@" in url.partition("://")[2]:
        raise ImageArchiveError("url: the user or password has an unencoded '/', '#' or '?'; percent-encode it "
                                "(%2F, %23, %3F)", kind="invalid")


def _read_into(resp, part, mode):
    """Write the response body to ``part``; the number of bytes written."""
    got = 0
    with open(part, mode) as f:
        while True:
            block = resp.read(CHUNK)
            if not block:
                break
            f.write(block)
            got += len(block)
        f.flush()
        os.fsync(f.fileno())
    return got


def fetch_archive(url, dest, partial_dir, checksum, timeout=600, attempts=3, validate_certs=True,
                  check_mode=False, opener=open_url, sleep=time.sleep):
    """Download ``url`` to ``dest`` (see the file's docstring). Returns a dict: changed, msg, attempts,
    resumed_at (offsets resumed from), bytes, notes. Raises ImageArchiveError with a masked message
    (kind ``download`` or ``checksum``) and the details ``attempts``, ``resumed_from``, ``notes``.
    """
    check_fetch_url(url)
    mask = SecretMasker([url])
    shown = mask(mask_url(url))
    expected = parse_checksum(checksum)
    if expected is None:
        raise ImageArchiveError("checksum is required to download %s" % shown, kind="invalid")
    if os.path.isfile(dest) and hash_file(dest)[0] == expected:
        return {"changed": False, "msg": "%s already has sha256:%s" % (dest, expected), "attempts": 0,
                "resumed_at": [], "bytes": os.path.getsize(dest), "notes": []}
    if check_mode:
        return {"changed": True, "msg": "would download %s" % shown, "attempts": 0, "resumed_at": [],
                "bytes": 0, "notes": []}
    attempts = max(1, int(attempts))
    part = os.path.join(partial_dir, os.path.basename(dest) + ".part")
    resumed_from = os.path.getsize(part) if os.path.exists(part) else 0
    notes = []
    resumes = []
    tries = 0

    def failed(msg, kind="download"):
        return ImageArchiveError(mask(msg), kind=kind, attempts=tries, resumed_from=resumed_from,
                                 notes=[mask(n) for n in notes])

    # The URL's user and password, percent-decoded, given to open_url apart: ansible-core 2.17 and
    # later decode a URL's userinfo themselves, 2.16 sent it still encoded (401 for an encoded secret).
    plain_url, auth = url, {}
    parts = urlsplit(url)
    if "@" in parts.netloc:
        userinfo, _sep, hostport = parts.netloc.rpartition("@")
        user, _sep, password = userinfo.partition(":")
        plain_url = urlunsplit(parts._replace(netloc=hostport))
        auth = {"url_username": unquote(user), "url_password": unquote(password)}

    while tries < attempts:
        tries += 1
        offset = os.path.getsize(part) if os.path.exists(part) else 0
        headers = {"Range": "bytes=%d-" % offset} if offset else {}
        try:
            resp = opener(plain_url, headers=headers, timeout=timeout, validate_certs=validate_certs, use_netrc=False,
                          **auth)
            try:
                status = resp.getcode()
                if offset and status == 206:
                    crange = resp.headers.get("Content-Range", "")
                    if not crange.startswith("bytes %d-" % offset):
                        raise IOError("server answered Range %d- with Content-Range %r" % (offset, crange))
                    mode = "ab"
                    resumes.append(offset)
                else:
                    mode = "wb"   # a full answer (200): start over
                    if offset:
                        notes.append("attempt %d: server ignored Range (HTTP %d), started over" % (tries, status))
                length = resp.headers.get("Content-Length")
                got = _read_into(resp, part, mode)
            finally:
                resp.close()
            if length is not None and got != int(length):
                raise IOError("transfer cut after %d of %s bytes" % (got, length))
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                # the .part may already hold the whole file: the checksum below decides
                notes.append("attempt %d: HTTP 416 for Range %d-" % (tries, offset))
            elif exc.code in _FINAL_HTTP:
                raise failed("download of %s failed: HTTP %d %s" % (shown, exc.code, exc.reason))
            else:
                notes.append("attempt %d: HTTP %d %s" % (tries, exc.code, exc.reason))
                sleep(min(5, tries))
                continue
        except _TRANSIENT as exc:   # URLError, timeouts, resets, cut transfers, TLS
            notes.append("attempt %d: %s" % (tries, exc))
            sleep(min(5, tries))
            continue
        if not os.path.exists(part):
            continue
        actual = hash_file(part)[0]
        if actual == expected:
            os.chmod(part, 0o640)
            os.replace(part, dest)
            resumed = (" (resumed at byte %s)" % ", ".join(map(str, resumes))) if resumes else ""
            return {"changed": True, "msg": mask("downloaded %s%s" % (shown, resumed)), "attempts": tries,
                    "resumed_at": resumes, "bytes": os.path.getsize(dest), "notes": [mask(n) for n in notes]}
        os.unlink(part)
        if (resumed_from or resumes) and tries < attempts:
            # what an earlier run left may come from another version of the file: once, from scratch
            notes.append("attempt %d: resumed file has sha256:%s, started over" % (tries, actual))
            resumed_from, resumes = 0, []
            continue
        raise failed("checksum mismatch for %s: expected sha256:%s, got sha256:%s; the download was removed"
                     % (shown, expected, actual), kind="checksum")
    kept = os.path.getsize(part) if os.path.exists(part) else 0
    raise failed("download of %s failed after %d attempt(s); %d bytes kept in %s to resume next run: %s"
                 % (shown, tries, kept, part, "; ".join(notes)))
