# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image archives (``docker save`` and OCI layouts) read without loading them, then fed to an engine.

Everything here runs on the managed host and uses the Python standard library only, plus the
engine's own CLI (``docker`` or ``ctr``) and ``zstd`` for ``.tar.zst``.

Reading (``scan_archive``)
    One pass over the file. Compressed archives are decompressed as a stream (gzip, xz and bzip2
    in process, zstd through a ``zstd -dc`` pipe) and the SHA-256 of the file is computed from
    the same read, so the checksum and the manifest cost one read together. An uncompressed tar
    is seekable: only its headers and small JSON members are read (the checksum is then taken
    while the archive is streamed into the engine, see below). Only ``manifest.json``,
    ``index.json`` and blobs small enough to be manifests are ever held in memory.

Loading (``stream_into``)
    The tar stream goes straight into the engine's stdin (``docker load``,
    ``ctr images import -``): nothing is staged on disk by this code. The last bytes of the
    stream (at least ``HOLD_BACK``) are held back until the whole file has been read and its
    SHA-256 matches; on a mismatch, or any error, the engine is killed before it has seen the end
    of the tar (the cut is inside a tar block), so it loads nothing. An uncompressed tar with
    nothing left to verify is given to the engine by path instead (``docker load -i``).

Idempotence (``plan``)
    By image ID (the config digest): an image is loaded only when the engine lacks that ID; tags
    that do not point at the ID are fixed with ``docker tag`` / ``ctr images tag``.
"""

from __future__ import annotations

import bz2
import collections
import hashlib
import json
import lzma
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import threading
import zlib

CHUNK = 1 << 20
HOLD_BACK = 1 << 20
BLOCK = 512
JSON_MAX = 64 << 20        # manifest.json / index.json
SMALL_BLOB_MAX = 4 << 20   # registries cap manifests at 4 MiB; bigger blobs are layers
ZERO_BLOCK = b"\0" * BLOCK

MSG_TRUNCATED = "archive is truncated or not a tar"
MSG_NOT_IMAGE = "no manifest.json or index.json: not a docker save / OCI archive"
MSG_LATEST_HINT = ("use a semantic tag like pytorch-2.1-cuda12.1-ubuntu20.04, "
                   "or set allow_latest: true")

MEDIA_INDEX = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")

CACHE_VERSION = 1


class ImageArchiveError(Exception):
    """A failure with a message fit for the user; ``kind`` says which (tests and callers match it).

    kinds: missing, checksum, truncated, not_image, space, latest, invalid, compression, engine.
    """

    def __init__(self, msg, kind="error", **details):
        super(ImageArchiveError, self).__init__(msg)
        self.msg = msg
        self.kind = kind
        self.details = details


# ---------------------------------------------------------------------------------------------
# Checksums and references
# ---------------------------------------------------------------------------------------------

def parse_checksum(value):
    """``sha256:<hex>`` or bare hex -> lower-case hex, or None when not given."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip().lower()
    algo, sep, hexpart = text.partition(":")
    if not sep:
        algo, hexpart = "sha256", text
    if algo != "sha256":
        raise ImageArchiveError("checksum: unsupported algorithm %r, only sha256 is supported" % algo,
                                kind="invalid")
    if not re.match(r"^[0-9a-f]{64}$", hexpart):
        raise ImageArchiveError("checksum: %r is not sha256:<64 hex digits>" % value, kind="invalid")
    return hexpart


_DOMAIN_COMP = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = _DOMAIN_COMP + r"(?:\." + _DOMAIN_COMP + r")*(?::[0-9]+)?"
_PATH_COMP = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REF_RE = re.compile(
    r"^(?:(?P<domain>" + _DOMAIN + r")/)?"
    r"(?P<path>" + _PATH_COMP + r"(?:/" + _PATH_COMP + r")*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$",
    re.ASCII,
)
_PATH_COMP_RE = re.compile("^" + _PATH_COMP + "$")
_ID_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{12,64})$")


def parse_ref(ref):
    """Split an image reference like Docker does: (domain, path, tag, digest), fully qualified.

    ``ubuntu:20.04`` -> ('docker.io', 'library/ubuntu', '20.04', None); a missing tag stays None.
    """
    text = str(ref or "").strip()
    m = _REF_RE.match(text)
    if not m or len(text) > 512:
        raise ImageArchiveError("invalid image reference %r" % ref, kind="invalid")
    domain, path, tag, digest = m.group("domain"), m.group("path"), m.group("tag"), m.group("digest")
    if domain is not None and not ("." in domain or ":" in domain or domain == "localhost"
                                   or domain != domain.lower()):
        # docker: the first component is a registry only if it looks like a host name
        if not _PATH_COMP_RE.match(domain):
            raise ImageArchiveError("invalid image reference %r" % ref, kind="invalid")
        path = domain + "/" + path
        domain = None
    if domain in (None, "index.docker.io"):
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if len(domain) + 1 + len(path) > 255:
        raise ImageArchiveError("invalid image reference %r: name longer than 255" % ref,
                                kind="invalid")
    return domain, path, tag, digest


def normalize_ref(ref):
    """Fully qualified form used for comparisons: ``docker.io/library/ubuntu:20.04``."""
    domain, path, tag, digest = parse_ref(ref)
    if tag is None and digest is None:
        tag = "latest"
    out = domain + "/" + path
    if tag is not None:
        out += ":" + tag
    if digest is not None:
        out += "@" + digest
    return out


def familiar_ref(ref):
    """The short form ``docker images`` shows: ``ubuntu:20.04``, ``nvcr.io/nvidia/pytorch:23.10``."""
    full = normalize_ref(ref)
    if full.startswith("docker.io/"):
        full = full[len("docker.io/"):]
        if full.startswith("library/") and "/" not in full[len("library/"):].split(":")[0].split("@")[0]:
            full = full[len("library/"):]
    return full


def is_latest(ref):
    """True for ``x:latest`` and for references without a tag (which mean latest)."""
    _domain, _path, tag, digest = parse_ref(ref)
    if digest is not None and tag is None:
        return False
    return tag is None or tag == "latest"


# ---------------------------------------------------------------------------------------------
# Byte sources: raw file (hashing), decompressors, tar blocks
# ---------------------------------------------------------------------------------------------

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


def _open_decompressed(path, compression, hashing=True):
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


class _TarBytes(object):
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


class _Member(object):
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
    """Yield a _Member per file of the tar; data a caller does not read is skipped.

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
            meta = _Member(tarbytes, "(tar extended header)", size).read(JSON_MAX)
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
        member = _Member(tarbytes, _clean_name(name), size)
        if info.type in _DATA_TYPES or info.type not in _NO_DATA_TYPES:
            yield member
        if not tarbytes.skip(member.remaining + padded):
            raise ImageArchiveError("%s (%s is cut short)" % (MSG_TRUNCATED, member.name),
                                    kind="truncated")


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------

def _load_json(member):
    data = member.read(JSON_MAX)
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageArchiveError("%s is not valid JSON: %s" % (member.name, exc), kind="not_image")


class _Collector(object):
    """Keeps what the manifest needs from a single pass over the members."""

    def __init__(self):
        self.manifest_json = None
        self.index_json = None
        self.oci_layout = False
        self.blobs = {}
        self.members = 0

    def visit(self, member):
        self.members += 1
        name = member.name
        if name == "manifest.json":
            self.manifest_json = _load_json(member)
        elif name == "index.json":
            self.index_json = _load_json(member)
        elif name == "oci-layout":
            self.oci_layout = True
        elif name.startswith("blobs/") and 0 < member.size <= SMALL_BLOB_MAX:
            parts = name.split("/")
            if len(parts) != 3:
                return
            data = member.read(SMALL_BLOB_MAX)
            if data[:1] != b"{":
                return
            try:
                doc = json.loads(data.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return
            if isinstance(doc, dict) and ("manifests" in doc or ("config" in doc and "layers" in doc)):
                self.blobs["%s:%s" % (parts[1], parts[2])] = doc


def _host_arch():
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def _config_id(value, where):
    """Image ID from manifest.json's Config: '<hex>.json' (classic) or 'blobs/sha256/<hex>' (25+)."""
    if not isinstance(value, str) or not value:
        raise ImageArchiveError("%s: entry without a Config" % where, kind="not_image")
    parts = value.split("/")
    hexpart = parts[-1]
    if hexpart.endswith(".json"):
        hexpart = hexpart[:-len(".json")]
    algo = parts[-2] if len(parts) >= 3 and parts[-3] == "blobs" else "sha256"
    if algo != "sha256" or not re.match(r"^[0-9a-f]{64}$", hexpart):
        raise ImageArchiveError("%s: cannot read an image ID from Config %r" % (where, value),
                                kind="not_image")
    return "sha256:" + hexpart


def _names_from_annotations(annotations):
    """Full references from an index.json descriptor; a bare tag ('1.0') names no repository."""
    out = []
    if not isinstance(annotations, dict):
        return out
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = annotations.get(key)
        if not isinstance(value, str) or not value:
            continue
        if key.startswith("org.") and not ("/" in value or ":" in value):
            continue
        if "@" in value:
            continue  # a digest reference is not a name the engine can tag
        try:
            parse_ref(value)
        except ImageArchiveError:
            continue
        out.append(value)
    return out


def _resolve_descriptor(desc, blobs, depth=0):
    """[(manifest digest, config digest, platform)] for a descriptor of index.json."""
    digest = desc.get("digest") if isinstance(desc, dict) else None
    doc = blobs.get(digest)
    if doc is None:
        return []
    if "manifests" in doc or desc.get("mediaType") in MEDIA_INDEX:
        if depth > 4:
            return []
        out = []
        for child in doc.get("manifests") or []:
            if not isinstance(child, dict):
                continue
            ann = child.get("annotations") or {}
            if ann.get("vnd.docker.reference.type") == "attestation-manifest":
                continue
            out.extend(_resolve_descriptor(child, blobs, depth + 1))
        return out
    config = doc.get("config") or {}
    cfg_digest = config.get("digest")
    if not isinstance(cfg_digest, str) or not cfg_digest.startswith("sha256:"):
        return []
    plat = desc.get("platform") or config.get("platform") or {}
    return [(digest, cfg_digest, plat if isinstance(plat, dict) else {})]


def _add_tag(image, ref):
    try:
        key = normalize_ref(ref)
    except ImageArchiveError:
        return
    if key not in image["_keys"]:
        image["_keys"].add(key)
        image["tags"].append(ref)


def images_from_manifests(collector, arch=None):
    """The archive's images: [{'id', 'tags', 'digests'}] from manifest.json and/or index.json."""
    if collector.manifest_json is None and collector.index_json is None:
        raise ImageArchiveError(MSG_NOT_IMAGE, kind="not_image")
    arch = arch or _host_arch()
    images = []
    by_id = {}
    if collector.manifest_json is not None:
        if not isinstance(collector.manifest_json, list):
            raise ImageArchiveError("manifest.json is not a list of images", kind="not_image")
        for n, entry in enumerate(collector.manifest_json):
            if not isinstance(entry, dict):
                raise ImageArchiveError("manifest.json entry %d is not an object" % n, kind="not_image")
            image_id = _config_id(entry.get("Config"), "manifest.json entry %d" % n)
            image = by_id.get(image_id)
            if image is None:
                image = {"id": image_id, "tags": [], "digests": [], "_keys": set()}
                by_id[image_id] = image
                images.append(image)
            for tag in entry.get("RepoTags") or []:
                if isinstance(tag, str):
                    _add_tag(image, tag)
    if collector.index_json is not None:
        index = collector.index_json
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise ImageArchiveError("index.json has no manifests list", kind="not_image")
        for n, desc in enumerate(index["manifests"]):
            resolved = _resolve_descriptor(desc, collector.blobs)
            if not resolved:
                if collector.manifest_json is not None:
                    continue  # docker 25+: manifest.json already describes the image
                raise ImageArchiveError("index.json entry %d (%s) points at a manifest that is not in the "
                                        "archive" % (n, desc.get("digest") if isinstance(desc, dict) else desc),
                                        kind="not_image")
            chosen = resolved[0]
            for item in resolved:
                plat = item[2]
                if plat.get("architecture") == arch and plat.get("os", "linux") == "linux":
                    chosen = item
                    break
            image_id = chosen[1]
            if collector.manifest_json is not None:
                # a docker 25+ archive: match the index entry to the manifest.json image
                for item in resolved:
                    if item[1] in by_id:
                        image_id = item[1]
                        break
            image = by_id.get(image_id)
            if image is None:
                image = {"id": image_id, "tags": [], "digests": [], "_keys": set()}
                by_id[image_id] = image
                images.append(image)
            for digest in [desc.get("digest")] + [item[0] for item in resolved]:
                if isinstance(digest, str) and digest not in image["digests"] and digest != image_id:
                    image["digests"].append(digest)
            for ref in _names_from_annotations(desc.get("annotations")):
                _add_tag(image, ref)
    if not images:
        raise ImageArchiveError("the archive lists no images (empty manifest)", kind="not_image")
    for image in images:
        del image["_keys"]
    return images


def _archive_format(collector):
    if collector.manifest_json is not None and collector.index_json is not None:
        return "docker+oci"
    return "docker" if collector.manifest_json is not None else "oci"


def scan_archive(path, compression=None):
    """Read the archive's manifest without loading it.

    Returns a dict: format, compression, size, uncompressed_size, sha256 (None for a plain tar,
    whose headers are read by seeking), images, bytes_read.
    """
    check_file(path)
    if compression is None:
        compression = detect_compression(path)
    plain = compression == "none"
    source = _open_decompressed(path, compression, hashing=not plain)
    raw = source.raw
    try:
        tb = _TarBytes(raw, seek_size=raw.size) if plain else _TarBytes(source)
        collector = _Collector()
        for member in iter_tar(tb):
            collector.visit(member)
        images = images_from_manifests(collector)
        if plain:
            uncompressed = raw.size
            sha = None
        else:
            uncompressed = tb.pos + _drain_count(source)
            source.finish()
            sha = raw.hexdigest()
        return {
            "format": _archive_format(collector),
            "compression": compression,
            "size": raw.size,
            "uncompressed_size": uncompressed,
            "sha256": sha,
            "images": images,
            "bytes_read": raw.bytes_read,
        }
    finally:
        source.close()
        raw.close()


def _drain_count(source):
    total = 0
    while True:
        data = source.read(CHUNK)
        if not data:
            return total
        total += len(data)


def hash_file(path):
    """(sha256 hex, bytes read) of the whole file, streaming."""
    raw = _open_decompressed(path, "none").raw
    try:
        raw.drain()
        return raw.hexdigest(), raw.bytes_read
    finally:
        raw.close()


def check_file(path):
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


# ---------------------------------------------------------------------------------------------
# Streaming into an engine
# ---------------------------------------------------------------------------------------------

def _grow_pipe(f, size=CHUNK):
    """Linux: a 1 MiB pipe instead of 64 KiB, so the engine and this process switch 16x less."""
    try:
        import fcntl
        fcntl.fcntl(f.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError, ValueError):
        pass


class ProcessSink(object):
    """An engine command that reads a tar on stdin (``docker load``, ``ctr images import -``)."""

    def __init__(self, argv, label=None, env=None):
        self.label = label or os.path.basename(argv[0])
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self._out, stderr=self._err,
                                         env=env)
        except OSError as exc:
            raise ImageArchiveError("cannot run %s: %s" % (self.label, exc), kind="engine")
        _grow_pipe(self.proc.stdin)

    def _text(self, f):
        f.seek(0)
        return f.read().decode("utf-8", "replace").strip()

    def _failed(self, rc):
        err = self._text(self._err) or self._text(self._out)
        return ImageArchiveError("%s failed (exit %s): %s" % (self.label, rc, err), kind="engine",
                                 engine_stderr=err)

    def write(self, data):
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError, ValueError):
            raise self._failed(self.proc.wait())

    def commit(self):
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        rc = self.proc.wait()
        if rc != 0:
            raise self._failed(rc)
        return self._text(self._out)

    def abort(self):
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait()
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def close(self):
        self._out.close()
        self._err.close()


def stream_into(path, compression, sink, expected_sha256=None, known_sha256=None, hold_back=HOLD_BACK,
                chunk=CHUNK):
    """Feed the archive's tar stream to ``sink``; commit only once the whole file checks out.

    ``expected_sha256`` is the user's checksum; ``known_sha256`` what an earlier read of the file
    found (the file must not have changed since). The last ``hold_back`` bytes or more are written
    only after both match; otherwise the sink is aborted with a stream cut inside a tar block.
    Returns dict(sha256, bytes_read, tar_bytes, output).
    """
    source = _open_decompressed(path, compression, hashing=True)
    raw = source.raw
    held = collections.deque()
    held_len = 0
    sent = 0
    try:
        try:
            while True:
                data = source.read(chunk)
                if not data:
                    break
                held.append(data)
                held_len += len(data)
                while len(held) > 1 and held_len - len(held[0]) >= hold_back:
                    piece = held.popleft()
                    held_len -= len(piece)
                    sink.write(piece)
                    sent += len(piece)
            source.finish()
            digest = raw.hexdigest()
            if expected_sha256 and digest != expected_sha256:
                raise ImageArchiveError(
                    "checksum mismatch for %s: expected sha256:%s, got sha256:%s"
                    % (path, expected_sha256, digest), kind="checksum",
                    expected="sha256:" + expected_sha256, actual="sha256:" + digest)
            if known_sha256 and digest != known_sha256:
                raise ImageArchiveError("%s changed while it was being read (sha256 was %s, now %s)"
                                        % (path, known_sha256, digest), kind="checksum")
        except BaseException:
            if sent % BLOCK == 0 and held and sent:
                try:
                    sink.write(held[0][:1])  # never leave the engine at a clean tar boundary
                except ImageArchiveError:
                    pass
            sink.abort()
            raise
        total = sent + held_len
        while held:
            sink.write(held.popleft())
        output = sink.commit()
        return {"sha256": digest, "bytes_read": raw.bytes_read, "tar_bytes": total, "output": output}
    finally:
        source.close()
        raw.close()


# ---------------------------------------------------------------------------------------------
# Manifest cache: the re-run reads nothing when the file has not changed
# ---------------------------------------------------------------------------------------------

def _stat_key(st):
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class ManifestCache(object):
    """What a read of an archive found, keyed by its path and stat (inode, size, mtime, ctime).

    A changed file (new inode, size, mtime or ctime) misses. The directory must belong to the
    current user and not be writable by others, or the cache is ignored.
    """

    def __init__(self, directory):
        self.directory = directory

    def _file(self, realpath):
        return os.path.join(self.directory,
                            hashlib.sha256(realpath.encode("utf-8", "surrogateescape")).hexdigest()[:40]
                            + ".json")

    def _trusted(self, path):
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return st.st_uid == os.geteuid() and not st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode)

    def load(self, realpath, st):
        if not self.directory or not self._trusted(self.directory):
            return None
        path = self._file(realpath)
        if not self._trusted(path):
            return None
        try:
            with open(path, "r") as f:
                entry = json.load(f)
        except (OSError, ValueError):
            return None
        if (not isinstance(entry, dict) or entry.get("version") != CACHE_VERSION
                or entry.get("path") != realpath or entry.get("stat") != _stat_key(st)
                or not isinstance(entry.get("info"), dict)):
            return None
        return entry["info"]

    def store(self, realpath, st, info):
        if not self.directory:
            return False
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            if not self._trusted(self.directory):
                return False
            keep = dict((k, info.get(k)) for k in ("format", "compression", "size", "uncompressed_size",
                                                   "sha256", "images"))
            entry = {"version": CACHE_VERSION, "path": realpath, "stat": _stat_key(st), "info": keep}
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(entry, f)
                os.replace(tmp, self._file(realpath))
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            return True
        except (OSError, ValueError, TypeError):
            return False


# ---------------------------------------------------------------------------------------------
# Wanted tags, latest policy, plan
# ---------------------------------------------------------------------------------------------

def _match_id(key, images):
    m = _ID_RE.match(key.strip().lower())
    if not m:
        return None
    hexpart = m.group(1)
    hits = [img for img in images if img["id"].split(":", 1)[1].startswith(hexpart)]
    return hits[0] if len(hits) == 1 else None


def retag_targets(images, retag=None, prefix=None):
    """{image id: [new refs]} from a mapping (archive tag or image ID -> new ref) or a prefix."""
    out = dict((img["id"], []) for img in images)
    if prefix:
        if not prefix.endswith("/"):
            prefix += "/"
        for img in images:
            for tag in img["tags"]:
                new = prefix + familiar_ref(tag)
                parse_ref(new)
                if new not in out[img["id"]]:
                    out[img["id"]].append(new)
    for key, new in (retag or {}).items():
        if not isinstance(new, str) or not new:
            raise ImageArchiveError("retag: the new name for %r must be a non-empty string" % key,
                                    kind="invalid")
        if parse_ref(new)[3] is not None:
            raise ImageArchiveError("retag: %r has a digest; a new name is name:tag" % new, kind="invalid")
        target = None
        try:
            wanted = normalize_ref(key)
        except ImageArchiveError:
            wanted = None
        if wanted is not None:
            for img in images:
                if any(normalize_ref(t) == wanted for t in img["tags"]):
                    target = img
                    break
        if target is None:
            target = _match_id(key, images)
        if target is None:
            have = sorted(set(t for img in images for t in img["tags"])) + [img["id"] for img in images]
            raise ImageArchiveError("retag: %r is neither a tag nor an image ID in the archive (it has: %s)"
                                    % (key, ", ".join(have)), kind="invalid")
        if new not in out[target["id"]]:
            out[target["id"]].append(new)
    return out


def check_latest(images, targets, allow_latest):
    """Refuse ':latest' and untagged references (archive tags and new names) unless allowed."""
    if allow_latest:
        return
    for img in images:
        refs = list(img["tags"]) + list(targets.get(img["id"], []))
        if not refs:
            raise ImageArchiveError("image %s has no tag in the archive: an untagged image cannot be "
                                    "told apart from the next one; name it with retag (%s: name:tag); %s"
                                    % (img["id"], img["id"], MSG_LATEST_HINT), kind="latest")
        for ref in refs:
            if is_latest(ref):
                raise ImageArchiveError("refusing %r: ':latest' (or no tag) names a different image over "
                                        "time; %s" % (ref, MSG_LATEST_HINT), kind="latest", ref=ref)


def plan(images, targets, present_ids, ref_ids, force=False):
    """What to do per image.

    present_ids: the archive's image IDs the engine has. ref_ids: {normalized ref: set of IDs it
    points at}. Returns [{'id', 'tags', 'load' (bool), 'tag' ([refs to point at the id])}].
    """
    out = []
    for img in images:
        image_id = img["id"]
        extra = targets.get(image_id, [])
        present = image_id in present_ids
        load = force or not present

        def missing(refs):
            return [r for r in refs if image_id not in ref_ids.get(normalize_ref(r), ())]

        if load:
            to_tag = missing(extra)          # the load itself sets the archive's tags
        else:
            to_tag = missing(list(img["tags"]) + list(extra))
        seen = set()
        uniq = []
        for ref in to_tag:
            key = normalize_ref(ref)
            if key not in seen:
                seen.add(key)
                uniq.append(ref)
        out.append({"id": image_id, "tags": list(img["tags"]), "load": load, "tag": uniq})
    return out


# ---------------------------------------------------------------------------------------------
# Engines (the CLI is run through an injected ``run(argv) -> (rc, stdout, stderr)``)
# ---------------------------------------------------------------------------------------------

def free_bytes(path):
    """(existing directory checked, bytes available to unprivileged users) for path or a parent."""
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    st = os.statvfs(probe)
    return probe, st.f_bavail * st.f_frsize


class DockerEngine(object):
    name = "docker"

    def __init__(self, run, docker="docker"):
        self.run = run
        self.docker = docker

    def _no_such(self, line):
        return "no such image" in line.lower() or "no such object" in line.lower()

    def query(self, images, refs):
        """(present archive IDs, {normalized ref: {archive IDs it points at}})."""
        alias = {}
        for img in images:
            alias[img["id"]] = img["id"]
            for digest in img.get("digests", []):
                alias[digest] = img["id"]
        argv = [self.docker, "image", "inspect", "--format", "{{json .Id}}\t{{json .RepoTags}}"] + list(alias)
        rc, out, err = self.run(argv)
        bad = [line for line in (err or "").splitlines() if line.strip() and not self._no_such(line)]
        if rc != 0 and bad:
            raise ImageArchiveError("docker image inspect failed: %s" % "\n".join(bad), kind="engine")
        present = set()
        ref_ids = {}
        for line in (out or "").splitlines():
            if not line.strip():
                continue
            try:
                found_id, tags = line.split("\t", 1)
                found_id = json.loads(found_id)
                tags = json.loads(tags) or []
            except ValueError:
                raise ImageArchiveError("unexpected output from docker image inspect: %r" % line, kind="engine")
            image_id = alias.get(found_id)
            if image_id is None:
                continue
            present.add(image_id)
            for tag in tags:
                try:
                    ref_ids.setdefault(normalize_ref(tag), set()).add(image_id)
                except ImageArchiveError:
                    continue
        return present, ref_ids

    def default_staging_dir(self):
        rc, out, _err = self.run([self.docker, "info", "--format", "{{.DockerRootDir}}"])
        root = (out or "").strip()
        return root if rc == 0 and root.startswith("/") else "/var/lib/docker"

    def can_load(self, info):
        """Docker's classic image store reads manifest.json only; OCI-only archives need containerd."""
        if info["format"] != "oci":
            return None
        rc, out, _err = self.run([self.docker, "info", "--format", "{{json .DriverStatus}}"])
        if rc == 0 and "io.containerd.snapshotter" in (out or ""):
            return None
        return ("this is an OCI-only archive (index.json, no manifest.json): Docker's classic image store "
                "cannot load it; use engine: containerd, or an archive written by docker save")

    def load_argv(self, path=None):
        return [self.docker, "load"] + (["-i", path] if path else [])

    def tag(self, image_id, ref, source_ref=None):
        rc, _out, err = self.run([self.docker, "tag", image_id, ref])
        if rc != 0:
            raise ImageArchiveError("docker tag %s %s failed: %s" % (image_id, ref, (err or "").strip()),
                                    kind="engine")


class ContainerdEngine(object):
    name = "containerd"

    def __init__(self, run, ctr="ctr", namespace="k8s.io", address=None):
        self.run = run
        self.base = [ctr] + (["--address", address] if address else []) + ["--namespace", namespace]
        self.namespace = namespace
        self.raw_names = {}

    def list_images(self):
        rc, out, err = self.run(self.base + ["images", "ls"])
        if rc != 0:
            raise ImageArchiveError("ctr images ls failed: %s" % (err or out or "").strip(), kind="engine")
        found = {}
        for line in (out or "").splitlines()[1:]:
            cols = line.split()
            if len(cols) < 3:
                continue
            ref, mediatype, digest = cols[0], cols[1], cols[2]
            try:
                key = normalize_ref(ref)
            except ImageArchiveError:
                continue
            found[key] = (ref, mediatype, digest)
        return found

    def _content(self, digest):
        rc, out, _err = self.run(self.base + ["content", "get", digest])
        if rc != 0:
            return None
        try:
            doc = json.loads(out)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def _config_ids(self, digest, depth=0):
        doc = self._content(digest)
        if doc is None or depth > 3:
            return set()
        if "manifests" in doc:
            out = set()
            for child in doc.get("manifests") or []:
                if isinstance(child, dict) and isinstance(child.get("digest"), str):
                    out |= self._config_ids(child["digest"], depth + 1)
            return out
        cfg = (doc.get("config") or {}).get("digest")
        return {cfg} if isinstance(cfg, str) else set()

    def query(self, images, refs):
        found = self.list_images()
        present = set()
        ref_ids = {}
        resolved = {}
        for ref in refs:
            key = normalize_ref(ref)
            if key not in found:
                continue
            raw, _mediatype, digest = found[key]
            self.raw_names[key] = raw
            if digest not in resolved:
                ids = set()
                for img in images:
                    if digest == img["id"] or digest in img.get("digests", []):
                        ids.add(img["id"])
                if not ids:
                    configs = self._config_ids(digest)
                    ids = set(img["id"] for img in images if img["id"] in configs)
                resolved[digest] = ids
            ref_ids[key] = set(resolved[digest])
            present |= resolved[digest]
        return present, ref_ids

    def default_staging_dir(self):
        return "/var/lib/containerd"

    def can_load(self, info):
        return None

    def load_argv(self, path=None):
        return self.base + ["images", "import", path or "-"]

    def tag(self, image_id, ref, source_ref=None):
        if not source_ref:
            raise ImageArchiveError("containerd: image %s has no name to tag %s from" % (image_id, ref),
                                    kind="engine")
        src = self.raw_names.get(normalize_ref(source_ref), normalize_ref(source_ref))
        rc, out, err = self.run(self.base + ["images", "tag", "--force", src, normalize_ref(ref)])
        if rc != 0:
            raise ImageArchiveError("ctr images tag %s %s failed: %s" % (src, ref, (err or out or "").strip()),
                                    kind="engine")


# ---------------------------------------------------------------------------------------------
# The whole job
# ---------------------------------------------------------------------------------------------

def preload(path, engine, checksum=None, retag=None, prefix=None, allow_latest=False, staging_dir=None,
            min_free_bytes=0, force=False, check_mode=False, cache_dir=None, sink_factory=ProcessSink,
            direct_load=True):
    """Load one archive into ``engine`` when needed. Returns the module's result (without msg)."""
    expected = parse_checksum(checksum)
    path = os.path.abspath(path)
    st = check_file(path)
    realpath = os.path.realpath(path)
    cache = ManifestCache(cache_dir) if cache_dir else None
    bytes_read = 0

    info = cache.load(realpath, st) if cache else None
    from_cache = info is not None
    if info is None:
        info = scan_archive(path)
        bytes_read += info["bytes_read"]
    sha_known_before = bool(info.get("sha256"))
    if expected and info.get("sha256") and info["sha256"] != expected:
        raise ImageArchiveError("checksum mismatch for %s: expected sha256:%s, got sha256:%s"
                                % (path, expected, info["sha256"]), kind="checksum",
                                expected="sha256:" + expected, actual="sha256:" + info["sha256"])
    images = info["images"]
    targets = retag_targets(images, retag, prefix)
    check_latest(images, targets, allow_latest)

    all_refs = []
    for img in images:
        all_refs.extend(img["tags"])
        all_refs.extend(targets[img["id"]])
    present, ref_ids = engine.query(images, all_refs)
    steps = plan(images, targets, present, ref_ids, force=force)
    need_load = any(step["load"] for step in steps)

    if expected and not info.get("sha256") and (check_mode or not need_load):
        digest, n = hash_file(path)
        bytes_read += n
        if digest != expected:
            raise ImageArchiveError("checksum mismatch for %s: expected sha256:%s, got sha256:%s"
                                    % (path, expected, digest), kind="checksum",
                                    expected="sha256:" + expected, actual="sha256:" + digest)
        info["sha256"] = digest

    space = None
    if need_load:
        why = engine.can_load(info)
        if why:
            raise ImageArchiveError(why, kind="engine")
        checked, available = free_bytes(staging_dir or engine.default_staging_dir())
        needed = 2 * int(info["uncompressed_size"]) + int(min_free_bytes or 0)
        space = {"path": checked, "needed": needed, "available": available}
        if available < needed:
            raise ImageArchiveError(
                "not enough free space in %s: need %d bytes (2 x %d uncompressed, unpacked once to stage and "
                "once into the image store, + min_free_bytes %d), available %d"
                % (checked, needed, info["uncompressed_size"], int(min_free_bytes or 0), available),
                kind="space", needed=needed, available=available, path=checked)

    loaded_output = None
    load_mode = None
    if need_load and not check_mode:
        if info["compression"] == "none" and (not expected or info.get("sha256")) and direct_load:
            # nothing left to verify (no checksum asked, or the cache vouches for this very file):
            # the engine reads the file itself, as fast as a plain `docker load -i`. It still checks
            # every layer against the config whose digest is the image ID, and the IDs are checked
            # below.
            load_mode = "direct"
            rc, out, err = engine.run(engine.load_argv(path))
            if rc != 0:
                raise ImageArchiveError("%s load failed (exit %s): %s" % (engine.name, rc, (err or out or "").strip()),
                                        kind="engine", engine_stderr=err)
            loaded_output = (out or "").strip()
        else:
            load_mode = "stream"
            sink = sink_factory(engine.load_argv(), label="%s load" % engine.name)
            try:
                pumped = stream_into(path, info["compression"], sink, expected_sha256=expected,
                                     known_sha256=info.get("sha256"))
            finally:
                sink.close()
            bytes_read += pumped["bytes_read"]
            loaded_output = pumped["output"]
            if not info.get("sha256"):
                info["sha256"] = pumped["sha256"]
        present, ref_ids = engine.query(images, all_refs)
        for step in steps:
            if step["id"] not in present:
                raise ImageArchiveError("%s reported success but image %s is not there (output: %s)"
                                        % (engine.name, step["id"], loaded_output), kind="engine")
        # the load may have left an archive tag elsewhere (e.g. a name already taken): recompute
        steps_after = plan(images, targets, present, ref_ids, force=False)
        for step, after in zip(steps, steps_after):
            step["tag"] = after["tag"]

    results = []
    changed = False
    for step in steps:
        retagged = []
        names = step["tags"] + targets[step["id"]]
        pointing = [r for r in names if step["id"] in ref_ids.get(normalize_ref(r), ())]
        source_ref = (pointing or names or [None])[0]
        for ref in step["tag"]:
            if not check_mode:
                engine.tag(step["id"], ref, source_ref=source_ref)
            retagged.append(ref)
        if step["load"]:
            action = "would_load" if check_mode else "loaded"
        else:
            action = "skipped"
        changed = changed or step["load"] or bool(retagged)
        results.append({"id": step["id"], "tags": step["tags"], "action": action, "retagged": retagged})

    if cache and not check_mode and (not from_cache or (info.get("sha256") and not sha_known_before)):
        try:
            if _stat_key(os.stat(path)) == _stat_key(st):
                cache.store(realpath, st, info)
        except OSError:
            pass

    loaded = sum(1 for r in results if r["action"] in ("loaded", "would_load"))
    return {
        "changed": changed,
        "images": results,
        "loaded": loaded,
        # not "skipped": a truthy "skipped" in a task result makes Ansible report the task as
        # skipped (and drop its handler notifications), whatever "changed" says
        "skipped_count": sum(1 for r in results if r["action"] == "skipped"),
        "bytes_read": bytes_read,
        "archive": {
            "path": path,
            "format": info["format"],
            "compression": info["compression"],
            "size": info["size"],
            "uncompressed_size": info["uncompressed_size"],
            "sha256": ("sha256:" + info["sha256"]) if info.get("sha256") else None,
            "from_cache": from_cache,
        },
        "engine": engine.name,
        "load_mode": load_mode,
        "space": space,
    }
