# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.catalog_layers import (
    CatalogLayerError,
    layer_catalog,
)

BASE = {"pypi": [{"name": "tuna", "url": "https://tuna.example/simple"},
                 {"name": "ustc", "url": "https://ustc.example/simple"},
                 {"name": "sjtu", "url": "https://sjtu.example/simple"}],
        "docker": [{"name": "daocloud", "url": "https://d.example"}]}


def names(catalog, service="pypi"):
    return [entry["name"] for entry in catalog[service]]


def test_nothing_to_layer_is_the_base():
    assert layer_catalog(BASE) == BASE


def test_order_puts_the_sites_mirror_first_and_keeps_the_rest():
    assert names(layer_catalog(BASE, order={"pypi": ["sjtu"]})) == ["sjtu", "tuna", "ustc"]


def test_additions_prepend_new_and_replace_same_name_in_place():
    layers = {"gpulab_mirrors_add_site": {"pypi": [{"name": "lab", "url": "http://10.0.0.5/simple", "insecure": True},
                                                   {"name": "ustc", "url": "https://ustc-internal.example/simple"}]},
              "gpulab_mirrors_add_all": {"docker": [{"name": "harbor", "url": "https://harbor.example"}]}}
    catalog = layer_catalog(BASE, layers)
    assert names(catalog) == ["lab", "tuna", "ustc", "sjtu"]
    assert catalog["pypi"][2]["url"] == "https://ustc-internal.example/simple"
    assert names(catalog, "docker") == ["harbor", "daocloud"]
    assert BASE["pypi"][1]["url"] == "https://ustc.example/simple"  # input untouched


def test_layers_apply_in_variable_name_order_then_the_order():
    layers = {"gpulab_mirrors_add_b": {"pypi": [{"name": "b", "url": "https://b.example/simple"}]},
              "gpulab_mirrors_add_a": {"pypi": [{"name": "a", "url": "https://a.example/simple"}]}}
    assert names(layer_catalog(BASE, layers)) == ["b", "a", "tuna", "ustc", "sjtu"]
    assert names(layer_catalog(BASE, layers, {"pypi": ["tuna", "a"]})) == ["tuna", "a", "b", "ustc", "sjtu"]


def test_a_layer_may_add_a_service():
    catalog = layer_catalog(BASE, {"gpulab_mirrors_add_x": {"conda": [{"name": "tuna", "url": "https://t.example/anaconda"}]}})
    assert names(catalog, "conda") == ["tuna"]


@pytest.mark.parametrize("layers,order,message", [
    ({"gpulab_mirrors_add_x": ["a"]}, None, r"gpulab_mirrors_add_x: must be a mapping"),
    ({"gpulab_mirrors_add_x": {"pypi": [{"url": "https://x"}]}}, None, r"gpulab_mirrors_add_x.pypi\[0\]: must be a mapping with a name"),
    (None, {"pypi": ["nope"]}, r"gpulab_mirror_order.pypi: 'nope' not in gpulab_mirrors.pypi; use one of: tuna, ustc, sjtu"),
    (None, {"npm": ["x"]}, r"gpulab_mirror_order.npm: 'npm' is not a service"),
    (None, {"pypi": "tuna"}, r"gpulab_mirror_order.pypi: must be a list"),
    (None, {"pypi": ["tuna", "tuna"]}, r"must not repeat"),
])
def test_errors_name_the_variable(layers, order, message):
    with pytest.raises(CatalogLayerError, match=message):
        layer_catalog(BASE, layers, order)


@pytest.mark.parametrize("entry, message", [
    ({"name": "lab\nforged", "url": "https://x"}, r"^gpulab_mirrors_add_site.pypi\[0\].name: 'lab\\nforged' is not a mirror name"),
    ({"name": 7, "url": "https://x"}, r"^gpulab_mirrors_add_site.pypi\[0\].name: 7 is a number in YAML; quote it"),
])
def test_a_layer_entry_with_a_name_outside_the_catalog_pattern_names_the_layer_variable(entry, message):
    """The catalog check's one rule (probe_spec.name_problem), reported where the entry was written."""
    with pytest.raises(CatalogLayerError, match=message):
        layer_catalog(BASE, {"gpulab_mirrors_add_site": {"pypi": [entry]}})
