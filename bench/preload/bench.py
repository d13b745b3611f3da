# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preload benchmark: gpulab.provision.image_archive vs a plain `docker load -i`.

For each size in BENCH_SIZES_GB an image of random (incompressible) files is made with
`docker import`, saved with `docker save` and removed. Then, with the image removed before each
load:
  * at BENCH_RATIO_GB: `docker load -i` and the module's first load (with checksum, empty manifest
    cache), interleaved BENCH_REPEAT times, best of each; then the module's re-run;
  * at every size: the peak RSS of the module's own process (RUSAGE_SELF at exit, children
    excluded) and of its process tree (wait4: the module, docker CLI, zstd), for .tar and, with
    BENCH_ZSTD=1, .tar.zst.
Images and files are removed at the end, also on failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MODULE = os.path.join(ROOT, "plugins", "modules", "image_archive.py")
LAUNCH = os.path.join(HERE, "launch.py")
GOAL_FIRST = 1.10
GOAL_RERUN = 0.05
FILE_SIZE = 64 << 20


def env_list(name, default):
    return [float(x) for x in os.environ.get(name, default).split(",") if x.strip()]


SIZES = env_list("BENCH_SIZES_GB", "0.25,1,2")
RATIO_GB = float(os.environ.get("BENCH_RATIO_GB", "1"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
ZSTD = os.environ.get("BENCH_ZSTD", "1") == "1" and shutil.which("zstd") is not None
TOKEN = uuid.uuid4().hex[:8]
IMAGES = set()


def log(msg=""):
    print(msg, flush=True)


class RandomFile(object):
    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def make_image(ref, size):
    """docker import of a tar of random files streamed from here: nothing written but the image."""
    p = subprocess.Popen(["docker", "import", "-", ref], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    with tarfile.open(fileobj=p.stdin, mode="w|", bufsize=1 << 20) as tf:
        n = 0
        left = size
        while left > 0:
            part = min(FILE_SIZE, left)
            info = tarfile.TarInfo("data/random-%04d.bin" % n)
            info.size = part
            tf.addfile(info, RandomFile(part))
            left -= part
            n += 1
    p.stdin.close()
    out, err = p.stdout.read(), p.stderr.read()
    p.wait()
    if p.returncode != 0:
        raise SystemExit("docker import failed: %s" % err.decode())
    image_id = out.decode().strip()
    IMAGES.add(image_id)
    return image_id


def rmi(image_id):
    subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True, check=False)


def present(image_id):
    return subprocess.run(["docker", "image", "inspect", image_id], capture_output=True, check=False).returncode == 0


def timed(argv, env=None):
    """(seconds, exit code, tree peak RSS KiB, stdout) of a command, measured with wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _pid, status, usage = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode("utf-8", "replace")
        if p.returncode != 0:
            tail = err.read().decode("utf-8", "replace")[-2000:]
            raise SystemExit("%s failed (%d): %s %s" % (argv[:3], p.returncode, text[-2000:], tail))
        return elapsed, usage.ru_maxrss, text


CPU = {}


def run_module(work, args):
    """Run the module as a process; returns (seconds, self peak RSS KiB, tree peak RSS KiB, result).

    CPU["last"] gets the module process's own CPU seconds."""
    argsfile = os.path.join(work, "args.json")
    rssfile = os.path.join(work, "rss")
    with open(argsfile, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "collections"), BENCH_RSS_FILE=rssfile)
    elapsed, tree_rss, out = timed([sys.executable, LAUNCH, MODULE, argsfile], env=env)
    result = json.loads(out.strip().splitlines()[-1])
    with open(rssfile) as f:
        self_rss, cpu = f.read().split()
    CPU["last"] = float(cpu)
    return elapsed, int(self_rss), tree_rss, result


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def docker_root():
    out = subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True, text=True,
                         check=False).stdout.strip()
    return out if out.startswith("/") and os.path.isdir(out) else "/"


def mib(kib):
    return kib / 1024.0


def main():
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        raise SystemExit("bench/preload: docker info fails; it needs a working dockerd")
    base = os.environ.get("BENCH_DIR", "/var/tmp")
    # at the largest size: the .tar, its .zst and the loaded image (docker's disk), with a margin
    biggest = int(max(SIZES) * (1 << 30))
    for where, need in ((base, 2.2 * biggest), (docker_root(), 2.2 * biggest)):
        st = os.statvfs(where)
        free = st.f_bavail * st.f_frsize
        if free < need:
            raise SystemExit("bench/preload: %s has %.1f GiB free, needs %.1f GiB for %g GB archives; "
                             "free space or set BENCH_DIR / BENCH_SIZES_GB"
                             % (where, free / 2.0**30, need / 2.0**30, max(SIZES)))
    work = tempfile.mkdtemp(prefix="gpulab-bench-preload-", dir=base)
    started = time.perf_counter()
    rows = []
    ratio = {}
    try:
        log("bench/preload: sizes %s GB, ratios at %s GB, best of %d, zstd %s, scratch %s"
            % (",".join("%g" % s for s in SIZES), "%g" % RATIO_GB, REPEAT, "on" if ZSTD else "off", work))
        for size_gb in SIZES:
            size = int(size_gb * (1 << 30))
            ref = "gpulab-bench/preload-%gg-%s:1.0" % (size_gb, TOKEN)
            t0 = time.perf_counter()
            image_id = make_image(ref, size)
            tar = os.path.join(work, "preload-%g.tar" % size_gb)
            subprocess.run(["docker", "save", "-o", tar, ref], check=True, capture_output=True)
            rmi(image_id)
            digest = sha256(tar)
            made = time.perf_counter() - t0
            log("  %g GB: image made and saved in %.1f s (%d bytes)" % (size_gb, made, os.path.getsize(tar)))
            args = {"path": tar, "checksum": "sha256:" + digest}
            row = {"size": size_gb, "bytes": os.path.getsize(tar)}

            if abs(size_gb - RATIO_GB) < 1e-9:
                base_t, first_t, plain_t = [], [], []
                for i in range(REPEAT):
                    t, _rss, _out = timed(["docker", "load", "-i", tar])
                    base_t.append(t)
                    rmi(image_id)
                    # with checksum, empty cache: streamed through the module, verified on the way
                    cache = os.path.join(work, "cache-%d" % i)
                    t, self_rss, tree_rss, res = run_module(work, dict(args, cache_dir=cache))
                    assert res["changed"] and res["load_mode"] == "stream" and present(image_id), res
                    first_t.append(t)
                    row.update(self_rss=self_rss, tree_rss=tree_rss)
                    first_cpu = CPU["last"]
                    rmi(image_id)
                    # without checksum: the module reads the headers and hands docker the path
                    t, _s, _t, res = run_module(work, {"path": tar, "manifest_cache": False})
                    assert res["changed"] and res["load_mode"] == "direct" and present(image_id), res
                    plain_t.append(t)
                    plain_cpu = CPU["last"]
                    if i < REPEAT - 1:
                        rmi(image_id)
                rerun_t = []
                for _attempt in range(REPEAT):
                    t, _s, _t, res = run_module(work, dict(args, cache_dir=cache))
                    assert res["changed"] is False and res["skipped_count"] == 1 and res["bytes_read"] == 0, res
                    rerun_t.append(t)
                rerun_cpu = CPU["last"]
                t, _s, _t, res = run_module(work, dict(args, manifest_cache=False))
                assert res["changed"] is False, res
                ratio = {"base": base_t, "first": first_t, "plain": plain_t, "rerun": rerun_t,
                         "rerun_nocache": t, "first_cpu": first_cpu, "plain_cpu": plain_cpu,
                         "rerun_cpu": rerun_cpu}
                rmi(image_id)
            else:
                t, self_rss, tree_rss, res = run_module(work, dict(args, cache_dir=os.path.join(work, "cache-x")))
                assert res["changed"] and res["loaded"] == 1 and present(image_id), res
                row.update(self_rss=self_rss, tree_rss=tree_rss, first=t)
                rmi(image_id)

            if ZSTD:
                zst = tar + ".zst"
                subprocess.run(["zstd", "-q", "-1", "-T0", "-f", "-o", zst, tar], check=True)
                os.unlink(tar)
                t, self_rss, tree_rss, res = run_module(
                    work, {"path": zst, "checksum": sha256(zst), "cache_dir": os.path.join(work, "cache-z")})
                assert res["changed"] and res["loaded"] == 1 and present(image_id), res
                row.update(zst_self_rss=self_rss, zst_tree_rss=tree_rss, zst_first=t)
                rmi(image_id)
                os.unlink(zst)
            else:
                os.unlink(tar)
            rows.append(row)
            IMAGES.discard(image_id)

        log("")
        log("%-6s %12s  %-28s %-28s" % ("size", "archive", "module peak RSS .tar", "module peak RSS .tar.zst"))
        log("%-6s %12s  %-28s %-28s" % ("", "bytes", "self / tree (MiB)", "self / tree (MiB)"))
        for row in rows:
            zs = ("%.1f / %.1f" % (mib(row["zst_self_rss"]), mib(row["zst_tree_rss"]))) if "zst_self_rss" in row else "-"
            log("%-6s %12d  %-28s %-28s" % ("%gGB" % row["size"], row["bytes"],
                                            "%.1f / %.1f" % (mib(row["self_rss"]), mib(row["tree_rss"])), zs))
        log("")
        if ratio:
            b, f, p = min(ratio["base"]), min(ratio["first"]), min(ratio["plain"])

            def each(key):
                return " ".join("%.2f" % x for x in ratio[key])

            log("at %g GB, seconds per run (best is used):" % RATIO_GB)
            log("  docker load -i                                   %s" % each("base"))
            log("  module first load, checksum (streamed, verified) %s" % each("first"))
            log("  module first load, no checksum (docker -i path)  %s" % each("plain"))
            log("  module re-run (manifest cache)                   %s" % " ".join("%.3f" % x for x in ratio["rerun"]))
            log("  module re-run, manifest_cache: false (re-reads)  %.2f" % ratio["rerun_nocache"])
            log("  CPU seconds of the module process: first load with checksum %.2f, without %.2f, re-run %.2f"
                % (ratio["first_cpu"], ratio["plain_cpu"], ratio["rerun_cpu"]))
            log("  (load average now: %s)" % " ".join("%.1f" % x for x in os.getloadavg()))

            def verdict(value, goal):
                return "ok" if value <= goal else "MISSED"

            r1, r1p, r2 = f / b, p / b, min(ratio["rerun"]) / f
            log("RATIO first load with checksum / docker load -i    = %.3f  (goal <= %.2f) %s"
                % (r1, GOAL_FIRST, verdict(r1, GOAL_FIRST)))
            log("RATIO first load without checksum / docker load -i = %.3f  (goal <= %.2f) %s"
                % (r1p, GOAL_FIRST, verdict(r1p, GOAL_FIRST)))
            log("RATIO re-run / first load with checksum            = %.3f  (goal <= %.2f) %s"
                % (r2, GOAL_RERUN, verdict(r2, GOAL_RERUN)))
        selfs = [row["self_rss"] for row in rows] + [row["zst_self_rss"] for row in rows if "zst_self_rss" in row]
        if len(selfs) > 1:
            log("RATIO peak RSS of the module process, largest / smallest over %s GB = %.3f  (goal: flat) %s"
                % (",".join("%g" % r["size"] for r in rows), max(selfs) / float(min(selfs)),
                   "ok" if max(selfs) <= 1.25 * min(selfs) else "MISSED"))
        log("total %.0f s" % (time.perf_counter() - started))
    finally:
        for image_id in list(IMAGES):
            rmi(image_id)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
