# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every service of a host probed at once, under one deadline: :func:`probe_services`.

One :func:`probe.run_probe` per service, each in its own thread, all started together with the
same deadline, so a host with pypi, conda and docker pays one probe deadline, not three. Used by
the module ``gpulab.provision.mirror_probe_all`` (failover.yml) and by ``gpulab-mirror-watch``.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.gpulab.provision.plugins.module_utils.probe import run_probe
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError

# Keys of probe_inputs.probe_args' answer that are not run_probe options.
NOT_OPTIONS = ("kind", "mirrors", "timeout")
# Time the threads get past the deadline for their bookkeeping before they are given up.
SLACK_S = 2.0


def probe_request(args, names=None):
    """``{kind, mirrors, options}`` for one service from :func:`probe_inputs.probe_args`' answer.

    ``args`` are the service's mirror_probe arguments (kind, mirrors, require, freshness limits and
    the service's options), exactly as mirror_select passes them; ``names`` (optional) keeps only
    those mirrors, in catalog order (the watcher's polite probe).
    """
    if not isinstance(args, dict) or not args.get("kind"):
        raise ProbeSpecError("the service needs a probe kind, e.g. {kind: pypi}")
    chosen = [m for m in args.get("mirrors") or [] if names is None or m.get("name") in names]
    options = {key: value for key, value in args.items() if key not in NOT_OPTIONS}
    return {"kind": args["kind"], "mirrors": chosen, "options": options}


def probe_services(requests, deadline, validate_certs=True, ca_path=None, opener=None, clock=time.monotonic):
    """Probe ``requests`` (service -> :func:`probe_request`) at once, within one ``deadline``.

    Returns ``{"services": {service: run_probe's answer, or {"error": message}}, "elapsed_ms": int}``.
    A service whose input is bad gets its error (credentials masked by run_probe) and the others
    are still probed.
    """
    started = clock()
    answers = {}
    lock = threading.Lock()

    def work(service, request):
        try:
            answer = run_probe(request["kind"], request["mirrors"], deadline=deadline, opener=opener,
                               validate_certs=validate_certs, ca_path=ca_path, **request["options"])
        except ProbeSpecError as exc:
            answer = {"error": str(exc)}
        except Exception as exc:  # a bug in one probe must not hide the other services' answers
            answer = {"error": "probe failed: %s" % exc.__class__.__name__}
        with lock:
            answers[service] = answer

    threads = []
    for service, request in requests.items():
        thread = threading.Thread(target=work, args=(service, request), name="probe-%s" % service)
        thread.daemon = True
        thread.start()
        threads.append(thread)
    try:
        limit = float(deadline) + SLACK_S
    except (TypeError, ValueError):
        limit = SLACK_S
    for thread in threads:
        thread.join(max(0.0, limit - (clock() - started)))
    with lock:
        done = dict(answers)
    for service in requests:
        if service not in done:
            done[service] = {"error": "probe did not return within %s s" % limit}
    return {"services": done, "elapsed_ms": int(round((clock() - started) * 1000))}
