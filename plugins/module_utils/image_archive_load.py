# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tar stream fed to an engine's stdin (``docker load``, ``ctr images import -``), verified on the way.

Nothing is staged on disk. The last bytes of the stream (at least ``HOLD_BACK``) are held back
until the whole file has been read and its SHA-256 matches; on a mismatch, or any error, the engine
is killed before it has seen the end of the tar (the cut is inside a tar block), so it loads nothing.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import tempfile

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_digest import checksum_mismatch
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_streams import CHUNK, open_archive
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_tar import BLOCK

HOLD_BACK = 1 << 20


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
    source = open_archive(path, compression, hashing=True)
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
                raise checksum_mismatch(path, expected_sha256, digest)
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
