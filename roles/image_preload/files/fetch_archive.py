# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Download one archive on the managed host, resuming an interrupted transfer, verified by SHA-256.

Run by the role image_preload with ansible.builtin.script (Python standard library only, no curl).

    GPULAB_FETCH_URL=URL fetch_archive.py DEST PARTIAL_DIR SHA256 TIMEOUT ATTEMPTS VALIDATE_CERTS(true|false)

The URL comes from the environment: it may carry credentials, which must not show on a command line.

The bytes land in PARTIAL_DIR/<name of DEST>.part (same file system as DEST). A .part left by an
earlier, interrupted run or attempt is resumed with an HTTP Range request; a server that ignores
Range (200) or refuses it (416) makes the download start over. Once complete, the file's SHA-256
is compared with SHA256; on a match the file is renamed onto DEST (atomic), on a mismatch the .part
is removed and the script fails. Prints one JSON line: changed, resumed_at (offsets resumed from), attempts, bytes, msg.
Credentials in the URL are never printed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request

CHUNK = 1 << 20


def masked(url):
    return re.sub(r"//[^/@]*@", "//***@", url)


def done(ok, **out):
    print(json.dumps(dict(out, failed=not ok)))
    sys.exit(0 if ok else 1)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h


def main():
    url = os.environ.get("GPULAB_FETCH_URL", "")
    dest, partial_dir, expected, timeout, attempts, validate = sys.argv[1:7]
    if not re.match(r"^https?://", url, re.IGNORECASE):
        done(False, msg="GPULAB_FETCH_URL must be an http:// or https:// URL, got %r" % masked(url))
    expected = expected.lower().split(":", 1)[-1]
    timeout, attempts = float(timeout), max(1, int(attempts))
    part = os.path.join(partial_dir, os.path.basename(dest) + ".part")
    ctx = None
    if url.lower().startswith("https:") and validate.lower() != "true":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    resumed_from = os.path.getsize(part) if os.path.exists(part) else 0
    errors = []
    resumes = []
    tries = 0
    while tries < attempts:
        tries += 1
        offset = os.path.getsize(part) if os.path.exists(part) else 0
        req = urllib.request.Request(url, headers={"Range": "bytes=%d-" % offset} if offset else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                status = resp.status
                if offset and status == 206:
                    crange = resp.headers.get("Content-Range", "")
                    if not crange.startswith("bytes %d-" % offset):
                        raise IOError("server answered Range %d- with Content-Range %r" % (offset, crange))
                    mode = "ab"
                    resumes.append(offset)
                else:
                    mode = "wb"   # a full answer (200): start over
                    if offset:
                        errors.append("attempt %d: server ignored Range (HTTP %d), started over" % (tries, status))
                        offset = 0
                length = resp.headers.get("Content-Length")
                got = 0
                with open(part, mode) as f:
                    for block in iter(lambda: resp.read(CHUNK), b""):
                        f.write(block)
                        got += len(block)
                    f.flush()
                    os.fsync(f.fileno())
                if length is not None and got != int(length):
                    raise IOError("transfer cut after %d of %s bytes" % (got, length))
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                # the .part may already hold the whole file: the checksum below decides
                errors.append("attempt %d: HTTP 416 for Range %d-" % (tries, offset))
            elif exc.code in (404, 403, 401, 410):
                done(False, msg="download of %s failed: HTTP %d %s" % (masked(url), exc.code, exc.reason),
                     attempts=tries, resumed_from=resumed_from)
            else:
                errors.append("attempt %d: HTTP %d %s" % (tries, exc.code, exc.reason))
                time.sleep(min(5, tries))
                continue
        except (OSError, ValueError, http.client.HTTPException) as exc:   # URLError, timeouts, resets, cut transfers
            errors.append("attempt %d: %s" % (tries, exc))
            time.sleep(min(5, tries))
            continue
        if not os.path.exists(part):
            continue
        actual = sha256_of(part).hexdigest()
        if actual == expected:
            os.chmod(part, 0o640)
            os.replace(part, dest)
            resumed = (" (resumed at byte %s)" % ", ".join(map(str, resumes))) if resumes else ""
            done(True, changed=True, resumed_at=resumes, attempts=tries, bytes=os.path.getsize(dest),
                 msg="downloaded %s%s" % (masked(url), resumed), notes=errors)
        os.unlink(part)
        if (resumed_from or resumes) and tries < attempts:
            # what an earlier run left may come from another version of the file: once, from scratch
            errors.append("attempt %d: resumed file has sha256:%s, started over" % (tries, actual))
            resumed_from, resumes = 0, []
            continue
        done(False, msg="checksum mismatch for %s: expected sha256:%s, got sha256:%s; the download was removed"
             % (masked(url), expected, actual), attempts=tries, resumed_from=resumed_from, notes=errors)
    done(False, msg="download of %s failed after %d attempt(s); %d bytes kept in %s to resume next run: %s"
         % (masked(url), tries, os.path.getsize(part) if os.path.exists(part) else 0, part, "; ".join(errors)),
         attempts=tries, resumed_from=resumed_from)


if __name__ == "__main__":
    main()
