# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build gpulab-mirror-watch.pyz from the collection's own module_utils (run on the controller).

The zip holds ``plugins/module_utils/watch_cli.py`` and everything it imports from this collection
and from ``ansible.module_utils`` (found by reading the imports, as AnsiballZ does for a module),
so the host needs only python3's standard library: no second copy of the probe, selection or
rendering logic. Entries are sorted and time-stamped 1980-01-01, so an unchanged collection builds
a byte-identical file and the role's copy reports no change.

    build_zipapp.py COLLECTION_ROOT OUTPUT [ENTRY PROGRAM]

ENTRY (default ``watch_cli``) is the module_utils module whose ``main()`` the zipapp runs, PROGRAM
(default ``gpulab-mirror-watch``) the command's name; the gpu_health role builds
``gpu_health_cli gpulab-gpu-health`` with this same script.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import sys
import zipfile

PREFIX = "ansible_collections.gpulab.provision."
ENTRY = PREFIX + "plugins.module_utils.watch_cli"
PROGRAM = "gpulab-mirror-watch"
MAIN = (
    "# {program}: built by the gpulab.provision.{role} role\n"
    "import sys\n"
    "from {entry} import main\n"
    "sys.exit(main())\n"
)


def locate(name, root, ansible_dir):
    """The source file of module ``name``, or None when it is not ours or ansible's."""
    if name.startswith(PREFIX):
        base = os.path.join(root, *name[len(PREFIX):].split("."))
    elif name == "ansible.module_utils" or name.startswith("ansible.module_utils."):
        base = os.path.join(ansible_dir, *name.split(".")[1:])
    else:
        return None
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def imports_of(name, path):
    """Absolute module names that ``path`` (module ``name``) may import, at any depth in the file."""
    with open(path, "rb") as handle:
        tree = ast.parse(handle.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                module = base + ("." + node.module if node.module else "")
            else:
                module = node.module or ""
            found.append(module)
            found.extend("%s.%s" % (module, alias.name) for alias in node.names)
    return found


def closure(root, ansible_dir, entry=ENTRY):
    todo, files = [entry], {}
    while todo:
        name = todo.pop()
        if name in files:
            continue
        path = locate(name, root, ansible_dir)
        if path is None:
            continue
        files[name] = path
        todo.extend(imports_of(name, path))
    return files


def build(root, ansible_dir, entry=ENTRY, program=PROGRAM):
    files = closure(root, ansible_dir, entry)
    entries = {}
    for name, path in files.items():
        arc = name.replace(".", "/") + ("/__init__.py" if path.endswith("__init__.py") else ".py")
        with open(path, "rb") as handle:
            entries[arc] = handle.read()
    # Packages along the way get an __init__.py (zipimport has no namespace packages); ansible's own
    # __init__ is left empty, as in AnsiballZ, so nothing outside module_utils is imported.
    for arc in list(entries):
        parts = arc.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            entries.setdefault("/".join(parts[:depth]) + "/__init__.py", b"")
    entries["__main__.py"] = MAIN.format(program=program, role=program[len("gpulab-"):].replace("-", "_"),
                                         entry=entry).encode()
    digest = hashlib.sha256()
    for arc in sorted(entries):
        digest.update(arc.encode() + b"\0" + entries[arc])
    entries[program.replace("-", "_") + "_build.txt"] = ("sha256 %s\n%s\n" % (digest.hexdigest(), "\n".join(sorted(entries)))).encode()
    buf = io.BytesIO()
    buf.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf:
        for arc in sorted(entries):
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[arc])
    return buf.getvalue(), digest.hexdigest(), len(files)


def main(argv):
    if len(argv) not in (3, 5):
        sys.stderr.write("usage: build_zipapp.py COLLECTION_ROOT OUTPUT [ENTRY PROGRAM]\n")
        return 2
    import ansible  # the controller's ansible-core: its module_utils travel in the zip
    root, output = argv[1], argv[2]
    entry, program = (PREFIX + "plugins.module_utils." + argv[3], argv[4]) if len(argv) == 5 else (ENTRY, PROGRAM)
    data, digest, count = build(root, os.path.dirname(ansible.__file__), entry, program)
    try:
        with open(output, "rb") as handle:
            same = handle.read() == data
    except FileNotFoundError:
        same = False
    if not same:
        os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
        with open(output + ".tmp", "wb") as handle:
            handle.write(data)
        os.replace(output + ".tmp", output)
    sys.stdout.write("%s %s %d modules%s\n" % (output, digest[:12], count, "" if same else " (rebuilt)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
