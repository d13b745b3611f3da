# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_preload role's report entry (``gpulab_report_image_preload``), from what its tasks registered.

Pure function behind the ``image_preload_report`` filter. Outcomes are data (``action``, ``id``,
``tags``, ``retagged``, ``note``); the one sentence, ``summary``, is rendered here from them.
"""

from __future__ import annotations

NOTE_NOT_STAGED = "archive not staged yet (check mode)"
NOTE_PRESENT = "present with every name; archive not staged"


def _results(registered):
    """The per-item results of a registered loop (a dict with ``results``, a list, or nothing)."""
    if isinstance(registered, dict):
        registered = registered.get("results")
    return [r for r in (registered or []) if isinstance(r, dict)]


def _ran(result):
    return not result.get("skipped") and not result.get("failed")


def preload_report(load, entries, engine="docker", check_mode=False, fetch=None, copied=None, downloaded=None,
                   removed=None):
    """{changed, summary, engine, loaded, skipped, staged, downloads, removed}.

    load: what the image_archive loop registered; entries: the role's list (with ``present``);
    fetch: the entries that had to be staged; copied / downloaded / removed: what the copy,
    image_archive_fetch and cleanup loops registered.
    """
    loaded = []
    skipped = []
    changed = False
    for r in _results(load):
        item = r.get("item") or {}
        if "images" not in r:
            # a loop item skipped by `when` in check mode: its archive is not on the host yet
            changed = True
            loaded.append({"name": item.get("name"), "action": "would_load", "id": None, "tags": list(item.get("refs") or []),
                           "retagged": [], "note": NOTE_NOT_STAGED})
            continue
        changed = changed or bool(r.get("changed"))
        for img in r["images"]:
            row = {"name": item.get("name"), "action": img.get("action"), "id": img.get("id"),
                   "tags": img.get("tags"), "retagged": img.get("retagged")}
            (skipped if img.get("action") == "skipped" else loaded).append(row)
    for entry in entries or []:
        if entry.get("present"):
            skipped.append({"name": entry.get("name"), "action": "skipped", "id": entry.get("id"),
                            "tags": list(entry.get("refs") or []), "retagged": [], "note": NOTE_PRESENT})
    if check_mode:
        staged = [e.get("name") for e in fetch or []]
    else:
        staged = [(r.get("item") or {}).get("name") for r in _results(copied) + _results(downloaded)
                  if _ran(r) and r.get("changed")]
    downloads = [r["msg"] for r in _results(downloaded) if _ran(r) and "msg" in r]
    gone = [(r.get("item") or {}).get("staged") for r in _results(removed) if _ran(r) and r.get("changed")]
    summary = "%d image(s) %s, %d already present (%s)" % (
        len(loaded), "would be loaded" if check_mode else "loaded", len(skipped), engine)
    if staged:
        summary += ", staged: " + ", ".join(staged)
    if gone:
        summary += ", removed: " + ", ".join(gone)
    return {
        "changed": changed or bool(staged) or bool(gone),
        "summary": summary,
        "engine": engine,
        "loaded": loaded,
        "skipped": skipped,
        "staged": staged,
        "downloads": downloads,
        "removed": gone,
    }
