# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception of the image_archive module_utils, and the message they share.

Every file ``image_archive_*.py`` raises :class:`ImageArchiveError`; the module turns it into
``fail_json(msg=..., error_kind=kind, **details)``.
"""

from __future__ import annotations

MSG_TRUNCATED = "archive is truncated or not a tar"


class ImageArchiveError(Exception):
    """A failure with a message fit for the user; ``kind`` says which (tests and callers match it).

    kinds: missing, checksum, truncated, not_image, space, latest, invalid, compression, engine.
    """

    def __init__(self, msg, kind="error", **details):
        super(ImageArchiveError, self).__init__(msg)
        self.msg = msg
        self.kind = kind
        self.details = details
