"""SecretArgsModule masks a secret that holds another whole, on every ansible-core line.

ansible-core before 2.19 replaced no_log values in the set's order (random per process): one
mirror's password that starts with another's kept its rest visible when the shorter one went first.
Twenty such pairs: without the longest-first order the chance that all come out right is 2**-20.
"""
from __future__ import annotations

from ansible.module_utils.common.parameters import remove_values

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpulab.provision.plugins.module_utils.secret_args import LongestFirst, SecretArgsModule


def test_no_log_values_iterate_longest_first():
    values = LongestFirst({"ab", "abcdef", "abc"})
    values.update({"abcdefgh"})
    assert list(values) == ["abcdefgh", "abcdef", "abc", "ab"]


def test_a_secret_holding_another_is_masked_whole():
    urls = []
    for i in range(20):
        urls.append("http://lab:pw%d-short@127.0.0.1:8080/simple" % i)
        urls.append("http://lab:pw%d-shortREST%d@127.0.0.1:8080/simple" % (i, i))
    with patch_module_args({"urls": urls}):
        module = SecretArgsModule(argument_spec={"urls": {"type": "list", "elements": "str"}})
    shown = remove_values(" ".join(urls), module.no_log_values)
    assert "REST" not in shown and "short" not in shown, shown
    assert shown.count("http://********@127.0.0.1") == 40
