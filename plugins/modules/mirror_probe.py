#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mirror_probe
short_description: Check which package mirrors are healthy, from the managed host, within one deadline
version_added: "1.0.0"
description:
  - Probes a list of mirrors of one kind (PyPI, conda, Docker registry, apt or plain HTTP) from the
    managed host, all at once, and reports for each whether it answered its protocol correctly,
    how fast, and if not, why.
  - Health is more than reachability. A PyPI mirror must serve a simple page that lists files of
    O(project) (PEP 503 HTML or PEP 691 JSON); a conda mirror repodata that parses; a Docker
    registry mirror C(/v2/) answering 200 or 401 with the C(Docker-Distribution-API-Version)
    header (and, with O(docker_image), that image's manifest); an apt repository a signed
    C(InRelease). A captive portal's 200, a TLS error, a redirect loop or a stall in the middle of
    the body are all unhealthy, each with its own reason.
  - The whole probe is bounded by one deadline, O(timeout), however many mirrors stall.
  - Redirects are followed (at most 5). Credentials in a mirror URL (C(https://user:token@host/))
    are sent as HTTP Basic authentication to that host only, and never appear in the results,
    error messages or the echoed module arguments.
  - Goes through the lab's proxy given in O(proxy) (its password never echoed); without it, honours the host's
    C(https_proxy), C(http_proxy) and C(no_proxy) environment variables.
  - Read-only; it never changes the host.
author:
  - gpulab.provision maintainers (@gpulab)
extends_documentation_fragment:
  - gpulab.provision.attributes
attributes:
  check_mode:
    support: full
    details: The probes are read-only, so check mode probes exactly as a normal run does.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Always returns C(changed=false).
options:
  kind:
    description:
      - What the mirrors serve, which decides how they are probed.
      - V(pypi) GETs C(<url>/<project>/) (PEP 503 / PEP 691 simple API).
      - V(conda) GETs C(<url>/<channel>/<subdir>/repodata.json).
      - V(docker) GETs C(<url>/v2/), then HEADs the O(docker_image) manifest when set.
      - V(apt) GETs C(<url>/dists/<suite>/InRelease), or C(<url>/InRelease) for a flat repository.
      - V(http) GETs C(<url><path>) and wants any 2xx.
    type: str
    required: true
    choices: [pypi, conda, docker, apt, http]
  mirrors:
    description:
      - The mirrors to probe. Results come back in the same order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: A unique name for the mirror, used in results and reports.
        type: str
        required: true
      url:
        description:
          - Base URL of the mirror, C(http://) or C(https://).
          - For V(pypi) the simple index (C(https://host/simple)); for V(conda) the base above
            the channels; for V(apt) the repository root; for V(docker) C(scheme://host[:port])
            with no path, as Docker's C(registry-mirrors) requires.
          - May carry credentials (C(https://user:password@host/...)) or a token in the query
            string; they are masked in every output.
        type: str
        required: true
      insecure:
        description:
          - Allow plain C(http://) and skip TLS certificate verification for this mirror only.
          - Without it a plain C(http://) URL is refused.
        type: bool
        default: false
      reference:
        description:
          - A reference entry, such as C(https://pypi.org/simple), probed like the others;
            its serial and image digests count in the freshness and digest comparison. Choosing
            it is up to the caller (mirror_select only does where the policy allows).
        type: bool
        default: false
      status_url:
        description:
          - The mirror site's status feed, with the mirror's entry as the C(#fragment), for
            example C(https://mirrors.tuna.tsinghua.edu.cn/static/tunasync.json#pypi) (tunasync, fields
            C(name, status, last_update_ts)) or C(https://mirrors.ustc.edu.cn/api/v1/metas#pypi)
            (USTC, fields C(name, syncing, lastSuccess)).
          - A failed last sync is unhealthy; the time of the last success is the mirror's age
            for O(max_age_h). A feed that cannot be read gives no signal.
        type: str
  timeout:
    description:
      - One deadline, in seconds, for the whole probe of all mirrors together.
      - A mirror that has not answered completely by then is unhealthy with reason
        C(timed out after <timeout> s).
    type: float
    default: 3.0
  project:
    description: V(pypi) only. The project whose simple page must list files.
    type: str
    default: pip
  channel:
    description: V(conda) only. Channel path under the mirror URL, for example C(pkgs/main) or C(cloud/conda-forge).
    type: str
    default: pkgs/main
  subdir:
    description: V(conda) only. Platform subdirectory whose C(repodata.json) is fetched.
    type: str
    default: noarch
  suite:
    description:
      - V(apt) only. Suite or codename under C(dists/).
      - A value ending in C(/) means a flat repository, as in a C(deb URL sub/) line; C(/) alone
        reads C(<url>/InRelease).
    type: str
    default: bookworm
  path:
    description: V(http) only. Path appended to each mirror URL.
    type: str
    default: ""
  docker_image:
    description:
      - V(docker) only. A Docker Hub image with a pinned tag, such as C(library/python:3.11-slim),
        that each mirror must serve, as a client pulls it - the anonymous Bearer-token flow,
        C(HEAD) of the manifest (OCI index, manifest list, v2 and OCI manifest types), then one
        byte (C(Range)) of one of its blobs, which catches mirrors that serve an allowlist only.
      - Where mirrors disagree on the tag's C(Docker-Content-Digest), the ones that differ from
        a O(mirrors[].reference) entry (or from the majority) are unhealthy.
      - Without it a mirror is healthy when C(/v2/) answers like a registry, which does not prove
        that it still mirrors Docker Hub.
    type: str
  require:
    description:
      - Pinned items every mirror must serve, probed at once within the same deadline. A
        mirror that lacks one is unhealthy (C(lacks torch==2.5.1)).
      - V(pypi) C(name==version). The project's simple page must list a wheel or sdist of that
        version (names normalised, filenames parsed, versions compared as PEP 440 C(==) does).
      - V(conda) C(name=version) (also C(version.*)) or C(name==version), in the
        C(<channel>/<subdir>) repodata, or the channel's C(noarch).
      - V(docker) C(repository:tag) (never C(latest)) or C(repository@digest); checked like
        O(docker_image).
    type: list
    elements: str
    default: []
  max_serial_lag:
    description:
      - V(pypi). A mirror whose serial is more than this behind the highest serial seen in this
        probe (reference entries included) is unhealthy. V(null) means no limit.
    type: int
  max_age_h:
    description:
      - A mirror whose last sync (conda C(repodata.json) C(Last-Modified), apt C(InRelease)
        C(Date), bandersnatch's C(last-modified) file, or O(mirrors[].status_url)) is older
        than this many hours is unhealthy. V(null) means no limit.
      - For V(pypi) the bandersnatch stamp (C(<url>/../last-modified)) is fetched only when this is set.
    type: float
  ca_path:
    description:
      - PEM bundle of the CA certificates to trust (for example a lab CA), instead of the
        system's store.
    type: path
  validate_certs:
    description:
      - Verify TLS certificates. V(false) turns verification off for every mirror; prefer
        O(mirrors[].insecure) for the one mirror that needs it.
    type: bool
    default: true
  proxy:
    description:
      - The lab's proxy, C(gpulab_proxy) (or what the filter C(gpulab.provision.proxy_settings) makes of it). Each mirror
        is probed through it unless its host is in O(proxy.no_proxy), the rule every client of the collection follows
        (a host, C(.domain), IP address, CIDR or C(*)).
      - Its URLs may carry a password, so they are C(no_log) (never echoed). Give the proxy here, not in the task's
        C(environment), which Ansible prints in the command line it shows at C(-vvv).
      - Unset or null, the probe uses the host's C(http_proxy), C(https_proxy) and C(no_proxy) environment variables.
    type: dict
    version_added: 1.3.0
    suboptions:
      http:
        description: Proxy URL (C(http://[user:password@]host:port)) for C(http://) mirrors (and C(https://) ones without O(proxy.https)).
        type: str
      https:
        description: Proxy URL for C(https://) mirrors (and C(http://) ones without O(proxy.http)).
        type: str
      no_proxy:
        description: Hosts, C(.domains), IP addresses or CIDRs reached directly.
        type: list
        elements: str
        default: []
notes:
  - Runs on the managed host and needs only the Python standard library.
  - Each mirror is probed in its own thread; the module returns by the deadline plus a few
    milliseconds even when every mirror stalls.
  - Responses are read up to 16 MiB (after gzip decoding); a larger answer is unhealthy.
seealso:
  - name: PEP 503 - Simple Repository API
    description: The HTML simple index a PyPI mirror must serve.
    link: https://peps.python.org/pep-0503/
  - name: PEP 691 - JSON-based Simple API
    description: The JSON form of the same index.
    link: https://peps.python.org/pep-0691/
  - name: Docker registry mirror
    description: How Docker uses C(registry-mirrors).
    link: https://docs.docker.com/docker-hub/image-library/mirror/
"""

EXAMPLES = r"""
- name: Probe the PyPI mirrors within 3 seconds
  gpulab.provision.mirror_probe:
    kind: pypi
    mirrors:
      - {name: tuna, url: "https://pypi.tuna.tsinghua.edu.cn/simple"}
      - {name: lab, url: "http://10.0.0.5:8080/simple", insecure: true}
    timeout: 3
  register: __pypi_probe

- name: Probe through the lab's proxy (an option, never the task's environment, which -vvv prints)
  gpulab.provision.mirror_probe:
    kind: pypi
    mirrors: "{{ gpulab_mirrors.pypi }}"
    proxy: "{{ gpulab_proxy | default({}) | gpulab.provision.proxy_settings(gpulab_mirrors) }}"

- name: Docker registry mirrors must still serve a pinned Hub image, and the lab's images
  gpulab.provision.mirror_probe:
    kind: docker
    mirrors:
      - {name: daocloud, url: "https://docker.m.daocloud.io"}
    docker_image: library/python:3.11-slim
    require: ["pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime"]
    ca_path: /etc/ssl/certs/lab-ca.pem

- name: PyPI mirrors must be current and hold the pinned torch
  gpulab.provision.mirror_probe:
    kind: pypi
    mirrors:
      - {name: tuna, url: "https://pypi.tuna.tsinghua.edu.cn/simple",
         status_url: "https://mirrors.tuna.tsinghua.edu.cn/static/tunasync.json#pypi"}
      - {name: pypi, url: "https://pypi.org/simple", reference: true}
    require: ["torch==2.5.1", "numpy==2.1.3"]
    max_serial_lag: 500
    max_age_h: 24
    timeout: 5

- name: NVIDIA CUDA apt repository (flat)
  gpulab.provision.mirror_probe:
    kind: apt
    suite: /
    mirrors:
      - {name: nvidia, url: "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64"}

- name: conda-forge through a mirror's cloud/ prefix
  gpulab.provision.mirror_probe:
    kind: conda
    channel: cloud/conda-forge
    subdir: linux-64
    mirrors:
      - {name: tuna, url: "https://mirrors.tuna.tsinghua.edu.cn/anaconda"}
    timeout: 10
"""

RETURN = r"""
results:
  description: One entry per mirror, in the order of O(mirrors).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The mirror's name.
      type: str
      sample: tuna
    url:
      description: The mirror URL with credentials and query-string tokens masked.
      type: str
      sample: "https://***@pypi.lab.example/simple"
    healthy:
      description: Whether the mirror answered its protocol correctly before the deadline.
      type: bool
      sample: true
    latency_ms:
      description: Milliseconds to a complete healthy answer; V(null) when unhealthy.
      type: int
      sample: 41
    http_status:
      description: The last HTTP status seen (after redirects); V(null) when none came.
      type: int
      sample: 200
    reason:
      description: Why the mirror is unhealthy, short and human; V(null) when healthy.
      type: str
      sample: timed out after 3.0 s
    serial:
      description:
        - V(pypi) only. The mirror's last serial, from a bandersnatch C(<!--SERIAL n-->) comment,
          PEP 691 C(meta._last-serial) or the C(X-PyPI-Last-Serial) header; V(null) otherwise.
        - Compare serials to see how far behind each mirror is.
      type: int
      sample: 24312345
    lag:
      description: V(pypi). How many serials behind the highest one in this probe; V(null) without a serial.
      type: int
      sample: 756
    age_h:
      description: Hours since the mirror's last sync, where it publishes one; V(null) otherwise.
      type: float
      sample: 5.2
    freshness:
      description: The freshness evidence in words, or C(freshness unknown) when the mirror gives no signal.
      type: str
      sample: "serial 51234, lag 756"
    digests:
      description: V(docker). C(Docker-Content-Digest) per probed image; V(null) for other kinds.
      type: dict
      sample: {"library/python:3.11-slim": "sha256:4b2c..."}
    reference:
      description: Whether this entry is a reference (O(mirrors[].reference)).
      type: bool
      sample: false
elapsed_ms:
  description: Milliseconds the whole probe took.
  returned: success
  type: int
  sample: 3004
timeout:
  description: The deadline used, in seconds.
  returned: success
  type: float
  sample: 3.0
"""

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import SecretMasker
from ansible_collections.gpulab.provision.plugins.module_utils.probe import run_probe
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import KINDS, ProbeSpecError
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import UrlOpener
from ansible_collections.gpulab.provision.plugins.module_utils.proxy import ProxyError, proxy_settings
from ansible_collections.gpulab.provision.plugins.module_utils.secret_args import SecretArgsModule


def argument_spec():
    return dict(
        kind=dict(type="str", required=True, choices=list(KINDS)),
        mirrors=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                name=dict(type="str", required=True),
                url=dict(type="str", required=True, no_log=False),
                insecure=dict(type="bool", default=False),
                reference=dict(type="bool", default=False),
                status_url=dict(type="str"),
            ),
        ),
        timeout=dict(type="float", default=3.0),
        project=dict(type="str", default="pip"),
        channel=dict(type="str", default="pkgs/main"),
        subdir=dict(type="str", default="noarch"),
        suite=dict(type="str", default="bookworm"),
        path=dict(type="str", default=""),
        docker_image=dict(type="str"),
        require=dict(type="list", elements="str", default=[]),
        max_serial_lag=dict(type="int"),
        max_age_h=dict(type="float"),
        ca_path=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        proxy=dict(type="dict", options=dict(http=dict(type="str", no_log=True), https=dict(type="str", no_log=True),
                                             no_proxy=dict(type="list", elements="str", default=[]))),
    )


def main():
    # no_log=True on the module only keeps the invocation out of the host's syslog/journal,
    # where a token in a mirror URL's query string would otherwise be written.
    # The URLs are shown (masked) on purpose, so they are not no_log; their secret parts are
    # (SecretArgsModule: from the start, so even a refused argument's echo is masked).
    module = SecretArgsModule(argument_spec=argument_spec(), supports_check_mode=True, no_log=True)
    params = module.params

    masker = SecretMasker()
    for mirror in params["mirrors"]:
        for url in (mirror["url"], mirror.get("status_url")):
            if url:
                masker.add_url(url)
    for key in ("http", "https"):
        if (params["proxy"] or {}).get(key):
            masker.add_url(params["proxy"][key])
    try:
        proxy = proxy_settings({k: v for k, v in (params["proxy"] or {}).items() if v not in (None, [])} or None)
    except ProxyError as exc:
        module.fail_json(msg=masker(str(exc)))

    options = {key: params[key] for key in ("project", "channel", "subdir", "suite", "path", "docker_image", "require",
                                            "max_serial_lag", "max_age_h")}
    try:
        outcome = run_probe(
            params["kind"],
            [dict(m) for m in params["mirrors"]],
            params["timeout"],
            opener=UrlOpener(validate_certs=params["validate_certs"], ca_path=params["ca_path"], proxy=proxy),
            **options
        )
    except ProbeSpecError as exc:
        module.fail_json(msg=masker(str(exc)))
    except Exception as exc:  # never let a traceback carry a URL out
        module.fail_json(msg="mirror_probe failed: %s" % masker("%s: %s" % (exc.__class__.__name__, exc)))

    module.exit_json(changed=False, **outcome)


if __name__ == "__main__":
    main()
