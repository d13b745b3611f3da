# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Push a tiny image into a real distribution registry (docker-registry) on loopback, over its HTTP API.

Standard library only, no docker needed: the config and one layer are uploaded as blobs
(``POST /v2/<name>/blobs/uploads/`` then ``PUT <location>?digest=``), then the v2 manifest is
``PUT`` under the tag. The image is the one ``fake_mirror.py --mode registry --seed S`` serves, so
a real registry and a fake one hold the same digest for the same seed.

    python3 tests/lab/push_image.py --registry http://127.0.2.10:5000 --image library/python:3.11-slim --seed a

Prints the tag's Docker-Content-Digest.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request

from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_mirror import MANIFEST_V2, fake_image, sha256_of  # noqa: E402


def request(method, url, body=b"", headers=None):
    req = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None, method=method,
                                 headers=dict({"Content-Length": str(len(body))}, **(headers or {})))
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=30) as resp:
        return resp.status, resp.headers


def push_blob(registry, repository, data):
    _status, headers = request("POST", "%s/v2/%s/blobs/uploads/" % (registry, repository))
    location = headers["Location"]
    if location.startswith("/"):
        location = registry + location
    location += ("&" if "?" in location else "?") + "digest=" + sha256_of(data)
    request("PUT", location, data, {"Content-Type": "application/octet-stream"})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--registry", required=True, help="http://127.x.y.z:port (loopback only)")
    parser.add_argument("--image", required=True, help="repository:tag")
    parser.add_argument("--seed", default="a")
    args = parser.parse_args(argv)
    if not (urlsplit(args.registry).hostname or "").startswith("127."):
        parser.error("--registry must be on 127.0.0.0/8")
    repository, tag = args.image.rsplit(":", 1)
    config, layer, manifest = fake_image(args.seed)
    for blob in (config, layer):
        push_blob(args.registry.rstrip("/"), repository, blob)
    _status, headers = request("PUT", "%s/v2/%s/manifests/%s" % (args.registry.rstrip("/"), repository, tag), manifest,
                               {"Content-Type": MANIFEST_V2})
    print(headers.get("Docker-Content-Digest") or sha256_of(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
