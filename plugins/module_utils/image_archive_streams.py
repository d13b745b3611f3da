# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The archive file as a byte stream: check it, detect its compression, read it decompressed.

gzip, xz and bzip2 are decompressed in process, zstd through a ``zstd -dc`` pipe. The SHA-256 of
the file (the compressed bytes) is computed from the same read as the decompressed stream, so a
checksum and a manifest cost one read together.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import zlib

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import MSG_TRUNCATED, ImageArchiveError

CHUNK = 1 << 20


def check_file(path):
    """os.stat of the archive; ImageArchiveError(kind="missing") unless it is a readable regular file."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise ImageArchiveError("archive not found: %s" % path, kind="missing")
        raise ImageArchiveError("cannot read archive %s: %s" % (path, exc), kind="missing")
    if not stat.S_ISREG(st.st_mode):
        raise ImageArchiveError("archive %s is not a regular file" % path, kind="missing")
    if not os.access(path, os.R_OK):
        raise ImageArchiveError("cannot read archive %s: permission denied" % path, kind="missing")
    return st


def detect_compression(path):
    """'none', 'gzip', 'zstd', 'xz' or 'bzip2', from the first bytes (the file name is not trusted)."""
    with open(path, "rb") as f:
        head = f.read(10)
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    bz_block = (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")  # block / end-of-stream magic
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in bz_block:
        return "bzip2"
    return "none"


class _RawReader(object):
    """The archive file, read in order; SHA-256 and a byte count of what was read."""

    def __init__(self, path, hashing=True):
        self._f = open(path, "rb")
        self._hash = hashlib.sha256() if hashing else None
        self.bytes_read = 0
        self.size = os.fstat(self._f.fileno()).st_size

    def read(self, n=-1):
        if n is None or n < 0:
            n = CHUNK
        data = self._f.read(n)
        if data:
            self.bytes_read += len(data)
            if self._hash is not None:
                self._hash.update(data)
        return data

    def readable(self):
        return True

    def seek(self, pos):
        # only used by the header scan of plain tars, which does not hash
        self._hash = None
        self._f.seek(pos)

    def drain(self):
        while self.read(CHUNK):
            pass

    def hexdigest(self):
        return self._hash.hexdigest() if self._hash is not None else None

    def close(self):
        self._f.close()


class _Decompressed(object):
    """read(n) over the decompressed archive; finish() raises when the compressed data was cut."""

    def __init__(self, raw, compression):
        self.raw = raw
        self.compression = compression
        self._zstd = None
        self._feeder = None
        self._feed_error = None
        self._errfile = None
        if compression == "none":
            self._f = raw
        elif compression == "gzip":
            import gzip
            self._f = gzip.GzipFile(fileobj=raw, mode="rb")
        elif compression == "xz":
            self._f = lzma.LZMAFile(raw)
        elif compression == "bzip2":
            self._f = bz2.BZ2File(raw)
        elif compression == "zstd":
            exe = shutil.which("zstd")
            if not exe:
                raise ImageArchiveError("%s is zstd-compressed but the zstd command is not installed "
                                        "(install the zstd package)" % getattr(raw, "name", "archive"),
                                        kind="compression")
            self._errfile = tempfile.TemporaryFile()
            self._zstd = subprocess.Popen([exe, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._errfile)
            self._f = self._zstd.stdout
            self._feeder = threading.Thread(target=self._feed, name="zstd-feeder")
            self._feeder.daemon = True
            self._feeder.start()
        else:
            raise ImageArchiveError("unsupported compression %r" % compression, kind="compression")

    def _feed(self):
        try:
            while True:
                data = self.raw.read(CHUNK)
                if not data:
                    break
                self._zstd.stdin.write(data)
        except (BrokenPipeError, ValueError):
            pass  # zstd stopped reading: its exit status tells why
        except Exception as exc:  # pragma: no cover - unexpected I/O error on the archive
            self._feed_error = exc
        finally:
            try:
                self._zstd.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass

    def read(self, n):
        try:
            return self._f.read(n)
        except (EOFError, OSError, lzma.LZMAError, zlib.error, ValueError) as exc:
            raise ImageArchiveError("%s (%s data: %s)" % (MSG_TRUNCATED, self.compression, exc),
                                    kind="truncated")

    def finish(self):
        """Read to the end (hashing everything) and check the decompressor ended cleanly."""
        while self.read(CHUNK):
            pass
        if self._zstd is not None:
            self._feeder.join()
            rc = self._zstd.wait()
            if self._feed_error is not None:
                raise ImageArchiveError("cannot read archive: %s" % self._feed_error, kind="missing")
            if rc != 0:
                self._errfile.seek(0)
                err = self._errfile.read().decode("utf-8", "replace").strip()
                raise ImageArchiveError("%s (zstd: %s)" % (MSG_TRUNCATED, err or "exit %d" % rc),
                                        kind="truncated")
        self.raw.drain()

    def close(self):
        if self._zstd is not None:
            if self._zstd.poll() is None:
                self._zstd.kill()
                self._zstd.wait()
            for stream in (self._zstd.stdout, self._zstd.stdin):
                try:
                    stream.close()
                except (OSError, ValueError):
                    pass
            if self._feeder is not None:
                self._feeder.join(5)
            self._errfile.close()
        elif self._f is not self.raw:
            self._f.close()


def open_archive(path, compression, hashing=True):
    try:
        raw = _RawReader(path, hashing=hashing)
    except (IOError, OSError) as exc:
        raise ImageArchiveError("cannot read archive %s: %s" % (path, exc), kind="missing")
    raw.name = path
    try:
        return _Decompressed(raw, compression)
    except Exception:
        raw.close()
        raise


def drain_count(source):
    """Read a stream to its end; the number of bytes it still had."""
    total = 0
    while True:
        data = source.read(CHUNK)
        if not data:
            return total
        total += len(data)
