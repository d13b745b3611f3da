#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_archive_fetch
short_description: Download an image archive on the host, resuming interrupted transfers, verified by SHA-256
version_added: "1.0.0"
description:
  - Downloads one file (an image archive for M(gpulab.provision.image_archive)) from an internal
    HTTP(S) URL, on the managed host itself, never through the controller.
  - The bytes land in O(partial_dir)C(/<name of dest>.part), on the same file system as O(dest).
    A C(.part) left by an earlier, interrupted run or attempt is resumed with an HTTP Range request;
    a server that ignores Range makes the download start over.
  - Once complete, the file's SHA-256 is compared with O(checksum). On a match the file is renamed
    onto O(dest) (atomic); on a mismatch the C(.part) is removed and the task fails naming both
    digests.
  - A O(dest) that already has O(checksum) is left alone (C(changed=false)).
  - Credentials in the URL (C(https://user:password@host/...)) and secret query parameters
    (C(?token=...)) are never printed. Messages show the URL masked (C(***)), and their values are
    hidden from the task result.
author:
  - gpulab.provision maintainers (@gpulab)
options:
  url:
    description:
      - HTTP(S) URL of the file. May carry credentials (user information or a token in the query);
        they are masked in every message.
    type: str
    required: true
  dest:
    description:
      - Where the verified file is placed (mode C(0640)).
    type: path
    required: true
  partial_dir:
    description:
      - Directory for the C(.part) file of an unfinished download, on the same file system as
        O(dest). Must exist.
    type: path
    required: true
  checksum:
    description:
      - Expected SHA-256 of the file, as C(sha256:<hex>) or bare hex.
    type: str
    required: true
  timeout:
    description:
      - Timeout in seconds of each attempt's connection and reads.
    type: int
    default: 600
  attempts:
    description:
      - Attempts, each resuming what the previous one left.
    type: int
    default: 3
  validate_certs:
    description:
      - Verify the server's TLS certificate.
    type: bool
    default: true
extends_documentation_fragment:
  - gpulab.provision.attributes
attributes:
  check_mode:
    support: full
    description: Reports whether the file would be downloaded; writes nothing.
  diff_mode:
    support: none
    description: No diff is produced.
  idempotent:
    support: full
    description: A O(dest) that already has O(checksum) is not downloaded again.
seealso:
  - module: gpulab.provision.image_archive
    description: Loads the downloaded archive into Docker or containerd.
"""

EXAMPLES = r"""
- name: Download an archive from the lab file server, with a token
  gpulab.provision.image_archive_fetch:
    url: "https://files.lab.internal/images/pytorch-2.1.tar.zst?token={{ lab_files_token }}"
    dest: /var/lib/gpulab/images/pytorch-2.1.tar.zst
    partial_dir: /var/lib/gpulab/images/.partial
    checksum: "sha256:{{ pytorch_image_sha256 }}"
"""

RETURN = r"""
msg:
  description: What was done, the URL masked (C(resumed at byte N) when a Range request resumed it).
  returned: always
  type: str
  sample: downloaded https://***@files.lab.internal/images/a.tar.zst?token=*** (resumed at byte 4096)
attempts:
  description: Attempts made (0 when nothing had to be downloaded).
  returned: success
  type: int
  sample: 2
resumed_at:
  description: Byte offsets the download was resumed from.
  returned: success
  type: list
  elements: int
  sample: [4096]
bytes:
  description: Size of O(dest) in bytes.
  returned: success
  type: int
  sample: 18432
notes:
  description: What went wrong in earlier attempts (masked).
  returned: always
  type: list
  elements: str
  sample: ["attempt 1: transfer cut after 4096 of 18432 bytes"]
"""

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_fetch import fetch_archive
from ansible_collections.gpulab.provision.plugins.module_utils.secret_args import SecretArgsModule


def main():
    # no_log=True keeps the invocation out of the host's syslog. The URL is shown masked on purpose; its
    # secret parts never are, anywhere in the result (SecretArgsModule: even when an argument is refused).
    module = SecretArgsModule(
        argument_spec=dict(
            url=dict(type="str", required=True, no_log=False),
            dest=dict(type="path", required=True),
            partial_dir=dict(type="path", required=True),
            checksum=dict(type="str", required=True),
            timeout=dict(type="int", default=600),
            attempts=dict(type="int", default=3),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
        no_log=True,
    )
    p = module.params
    try:
        result = fetch_archive(p["url"], p["dest"], p["partial_dir"], p["checksum"], timeout=p["timeout"],
                               attempts=p["attempts"], validate_certs=p["validate_certs"],
                               check_mode=module.check_mode)
    except ImageArchiveError as exc:
        module.fail_json(msg=exc.msg, error_kind=exc.kind, **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
