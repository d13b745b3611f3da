# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A strict, streaming tar reader: one pass, members a caller does not read are skipped.

Python's tarfile accepts a tar cut after a member; an image archive cut anywhere must be refused
before anything is loaded, so this reader insists on the end-of-archive block. A plain tar on disk
is skipped through by seeking (only its headers are read).
"""

from __future__ import annotations

import tarfile

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import MSG_TRUNCATED, ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_streams import CHUNK

BLOCK = 512
ZERO_BLOCK = b"\0" * BLOCK
JSON_MAX = 64 << 20        # manifest.json / index.json, and tar extended headers


class TarBytes(object):
    """Position-tracking reads over the tar stream; skips by seeking when the tar is a plain file."""

    def __init__(self, source, seek_size=None):
        self._src = source
        self._seek_size = seek_size
        self.pos = 0

    def read(self, n):
        parts = []
        got = 0
        while got < n:
            data = self._src.read(min(n - got, CHUNK))
            if not data:
                break
            parts.append(data)
            got += len(data)
        self.pos += got
        return b"".join(parts)

    def skip(self, n):
        """Skip n bytes; False when the data ends first."""
        if n <= 0:
            return True
        if self._seek_size is not None:
            target = self.pos + n
            if target > self._seek_size:
                return False
            self._src.seek(target)
            self.pos = target
            return True
        left = n
        while left:
            data = self._src.read(min(left, CHUNK))
            if not data:
                self.pos += n - left
                return False
            left -= len(data)
        self.pos += n
        return True


class Member(object):
    def __init__(self, tarbytes, name, size):
        self._tb = tarbytes
        self.name = name
        self.size = size
        self.remaining = size

    def read(self, limit):
        """The whole member (only for small JSON members; refuses more than ``limit`` bytes)."""
        if self.size > limit:
            raise ImageArchiveError("%s is %d bytes, more than the %d allowed for a JSON document"
                                    % (self.name, self.size, limit), kind="not_image")
        data = self._tb.read(self.remaining)
        self.remaining -= len(data)
        if self.remaining:
            raise ImageArchiveError("%s (%s is cut short)" % (MSG_TRUNCATED, self.name), kind="truncated")
        return data


_DATA_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_NO_DATA_TYPES = (tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                  tarfile.DIRTYPE, tarfile.FIFOTYPE)


def _parse_pax(data):
    out = {}
    pos = 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\0":
            break
        sp = data.index(b" ", pos)
        length = int(data[pos:sp])
        if length <= 0:
            raise ValueError("bad pax record length")
        record = data[sp + 1:pos + length - 1]
        key, _sep, value = record.partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _clean_name(name):
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def iter_tar(tarbytes):
    """Yield a Member per file of the tar; data a caller does not read is skipped.

    Strict about the end: a tar that stops without its end-of-archive block, or in the middle of
    a header or a member, raises ImageArchiveError(kind='truncated').
    """
    pax = {}
    long_name = None
    first = True
    while True:
        offset = tarbytes.pos
        block = tarbytes.read(BLOCK)
        if len(block) < BLOCK:
            if not block and not first:
                detail = "it ends without the end-of-archive block"
            elif not block:
                detail = "the file is empty"
            else:
                detail = "cut inside the header at offset %d" % offset
            raise ImageArchiveError("%s (%s)" % (MSG_TRUNCATED, detail), kind="truncated")
        if block == ZERO_BLOCK:
            if first:
                raise ImageArchiveError("%s (it starts with an empty block)" % MSG_TRUNCATED,
                                        kind="truncated")
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise ImageArchiveError("%s (bad header at offset %d: %s)" % (MSG_TRUNCATED, offset, exc),
                                    kind="truncated")
        first = False
        size = info.size
        padded = -size % BLOCK
        if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                         tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            meta = Member(tarbytes, "(tar extended header)", size).read(JSON_MAX)
            if not tarbytes.skip(padded):
                raise ImageArchiveError("%s (cut in an extended header)" % MSG_TRUNCATED, kind="truncated")
            if info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                try:
                    pax = _parse_pax(meta)
                except ValueError:
                    raise ImageArchiveError("%s (bad pax header at offset %d)" % (MSG_TRUNCATED, offset),
                                            kind="truncated")
            elif info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = meta.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        name = pax.get("path") or long_name or info.name
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise ImageArchiveError("%s (bad pax size)" % MSG_TRUNCATED, kind="truncated")
            padded = -size % BLOCK
        pax = {}
        long_name = None
        if info.type in _NO_DATA_TYPES:
            size, padded = 0, 0
        member = Member(tarbytes, _clean_name(name), size)
        if info.type in _DATA_TYPES or info.type not in _NO_DATA_TYPES:
            yield member
        if not tarbytes.skip(member.remaining + padded):
            raise ImageArchiveError("%s (%s is cut short)" % (MSG_TRUNCATED, member.name),
                                    kind="truncated")
