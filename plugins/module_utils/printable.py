# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text that is printed on one line: the watcher's journal line, a report row, a probe's reason.

A value that comes from the inventory, a mirror's answer or a file on the host may hold a newline,
a carriage return or an escape sequence; printed as is, it starts a line of its own in the journal
(a forged ``gpulab-mirror-watch`` line) or repaints the terminal. :func:`one_line` shows such
characters as escapes instead (``\\n``, ``\\x1b``), so whatever a value holds, it stays on its line and
is still readable. Pure, standard library only (runs on the managed host inside the watcher).
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char):
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return "\\x%02x" % code if code <= 0xFF else "\\u%04x" % code


def one_line(value):
    """``value`` as text (numbers too: a host called ``123``) with every control character escaped.

    Control characters are Unicode's ``Cc`` (C0, DEL, C1: ESC, CSI, NEL) and the line and paragraph
    separators (``Zl``, ``Zp``), which some readers also break a line on. None stays None.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case, and no control character is printable
        return text
    return "".join(_escape(char) if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in text)
