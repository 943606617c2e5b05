"""The variant registry is the one place named variants are declared (issue 13, first stage)."""

from __future__ import annotations

import kvmdbg
from kvmdbg.patches import _VARIANT_PATCHES, PATCHES, REGISTRY, VARIANT_DESCRIPTIONS, VARIANTS, resolve


def test_the_five_api_names_come_first_in_order_and_names_are_unique() -> None:
    assert VARIANTS[:5] == ("baseline", "p1", "p2", "p3", "upstream")
    assert len(set(VARIANTS)) == len(VARIANTS) == len(REGISTRY)
    assert kvmdbg.VARIANTS == VARIANTS


def test_everything_about_a_variant_is_derived_from_its_registry_entry() -> None:
    for v in REGISTRY:
        assert _VARIANT_PATCHES[v.name] == v.patches
        assert VARIANT_DESCRIPTIONS[v.name] == v.description and v.description
        assert all(p in PATCHES for p in v.patches)
        assert resolve(v.name).name == v.name


def test_each_variant_is_a_different_kernel() -> None:
    assert len({entry.patches for entry in REGISTRY}) == len(REGISTRY)
