# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module file the way `python module.py args.json` does, then write this process's own
peak RSS (KiB) and CPU seconds (user + system), children excluded, to $BENCH_RSS_FILE when the
interpreter exits."""
import atexit
import os
import resource
import runpy
import sys


def _report():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(os.environ["BENCH_RSS_FILE"], "w") as f:
        f.write("%d %.3f" % (usage.ru_maxrss, usage.ru_utime + usage.ru_stime))


atexit.register(_report)
module = sys.argv[1]
sys.argv = [module] + sys.argv[2:]
runpy.run_path(module, run_name="__main__")
