"""Make `ansible_collections.gpulab.provision` importable for pytest from a checkout.

collections/ansible_collections/gpulab/provision is a link to the checkout root, so the plugins
import exactly as they do inside Ansible.
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# tests/unit itself too: shared test helpers (mirror_servers.py) import by name.
for path in (os.path.join(ROOT, "collections"), os.path.join(ROOT, ".venv", "collections"), os.path.dirname(__file__)):
    if path not in sys.path:
        sys.path.insert(0, path)
