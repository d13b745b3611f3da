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


def _patch_module_args_before_2_19():
    """ansible.module_utils.testing.patch_module_args for ansible-core < 2.19 (the matrix's 2.16-2.18).

    2.19 added it; before, the same context (AnsibleModule reading its arguments from
    basic._ANSIBLE_ARGS) was the tests' own set_module_args. Registered under 2.19's name so
    the tests import one thing on every line; on 2.19 and later nothing is replaced.
    """
    try:
        import ansible.module_utils.testing  # noqa: F401  pylint: disable=unused-import
        return
    except ImportError:
        pass
    import contextlib
    import json
    import types
    from unittest import mock

    import ansible.module_utils
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        if not isinstance(args, (dict, type(None))):
            raise TypeError("The `args` arg must be a dict or None.")
        args = dict(args or {})
        args.setdefault("_ansible_remote_tmp", "/tmp")
        args.setdefault("_ansible_keep_remote_files", False)
        with mock.patch.object(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()):
            yield

    testing = types.ModuleType("ansible.module_utils.testing")
    testing.patch_module_args = patch_module_args
    sys.modules[testing.__name__] = testing
    ansible.module_utils.testing = testing


_patch_module_args_before_2_19()


import pytest  # noqa: E402  (after the path set-up above)


@pytest.fixture(autouse=True)
def _fresh_module_warnings():
    """Each test's module runs start with no warnings: AnsibleModule keeps them process-wide
    (ansible.module_utils.common.warnings), so one test's warning would reach the next test's result."""
    from ansible.module_utils.common import warnings as module_warnings
    for name in ("_global_warnings", "_global_deprecations"):
        getattr(module_warnings, name).clear()
    yield
