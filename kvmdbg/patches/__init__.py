"""The patches as data, and the variants built from them.

``PATCHES`` holds the three v1 patches; ``UPSTREAM`` is the v5 series that
replaced them. A variant is one of :data:`VARIANTS` or a set of patch names;
:func:`resolve` turns either into a :class:`~kvmdbg.kvm.definition.KvmDefinition`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from types import MappingProxyType

from kvmdbg.errors import PatchError, PatchTypeError
from kvmdbg.kvm.definition import BASELINE, KvmDefinition, Patch, diff
from kvmdbg.patches import p1, p2, p2_intended, p3, upstream

__all__ = ["PATCHES", "UPSTREAM", "VARIANTS", "VARIANT_DESCRIPTIONS", "REGISTRY", "Variant", "resolve",
           "variant_name", "diff"]

@dataclass(frozen=True)
class Variant:
    """One named kernel: the baseline plus ``patches``, in order, and a one-line description."""

    name: str
    patches: tuple[str, ...]
    description: str


# The registry of named variants: one line each. The five names of API.md come first, in this
# order; further variants only after them. VARIANTS, the variant -> patches map and the
# descriptions are all derived from it, so a new variant is one entry here (plus its patch).
REGISTRY: tuple[Variant, ...] = (
    Variant("baseline", (), "KVM as in Linux 5.15-rc4: the OS Lock is RAZ/WI, OSLSR_EL1 reads a constant 0x8"),
    Variant("p1", ("p1",), "baseline + patch 1: OSLSR_EL1 stored in the vCPU context"),
    Variant("p2", ("p1", "p2"), "baseline + patches 1-2: the guest's OSLK switched into the real OS Lock"),
    Variant("p3", ("p1", "p2", "p3"),
            "baseline + patches 1-3: ID_AA64DFR0_EL1 says Debug v8.2, DoubleLock not implemented"),
    Variant("upstream", ("upstream",),
            "the v5 series merged for 5.18: the OS Lock emulated, never written to hardware"),
    Variant("p2-intended", ("p1", "p2-intended"),
            "baseline + patch 1 + patch 2 as the cover letter intends (vcpu_write_sys_reg() arguments in the "
            "right order): the guest's OSLK follows its writes into the real OS Lock, with the design's own "
            "VHE hazards"),
)

PATCHES: Mapping[str, Patch] = MappingProxyType({
    "p1": p1.PATCH, "p2": p2.PATCH, "p3": p3.PATCH,
    "p2-intended": p2_intended.PATCH,
})
UPSTREAM: Patch = upstream.PATCH
# Every patch a variant may name, the v5 series included (it replaces, not extends, the v1 patches).
_APPLICABLE: Mapping[str, Patch] = MappingProxyType({**PATCHES, "upstream": UPSTREAM})

VARIANTS: tuple[str, ...] = tuple(v.name for v in REGISTRY)
_VARIANT_PATCHES: Mapping[str, tuple[str, ...]] = MappingProxyType({v.name: v.patches for v in REGISTRY})
VARIANT_DESCRIPTIONS: Mapping[str, str] = MappingProxyType({v.name: v.description for v in REGISTRY})


def _patch_names(variant: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(variant, str):
        key = variant.strip().lower()
        if key in _VARIANT_PATCHES:
            return _VARIANT_PATCHES[key]
        if "+" in key:  # a canonical name from variant_name(), such as "baseline+p3" or "p1+p3"
            return _patch_names(key.split("+"))
        raise PatchError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}, "
                         "or a set of patch names such as {'p1', 'p3'}")
    try:
        items = list(variant)
    except TypeError:
        raise PatchTypeError(f"a variant is a name or a set of patch names, not {type(variant).__name__} "
                             f"({variant!r:.60}); choose one of {', '.join(VARIANTS)}, or a set such as "
                             "{'p1', 'p3'}") from None
    bad = [n for n in items if not isinstance(n, str)]
    if bad:
        raise PatchTypeError(f"patch names are strings such as 'p1', not {bad[0]!r}")
    names = {n.strip().lower() for n in items}
    if "upstream" in names:
        if names != {"upstream"}:
            raise PatchError("'upstream' is a separate design (the v5 series) and cannot be mixed with the "
                             "v1 patches; use variant='upstream' alone")
        return ("upstream",)
    if "baseline" in names:
        names.discard("baseline")
    unknown = sorted(names - set(PATCHES))
    if unknown:
        raise PatchError(f"unknown patch name(s) {', '.join(map(repr, unknown))}; the patches are "
                         f"{', '.join(PATCHES)} (and the variant 'upstream')")
    for name in sorted(names):
        clash = [c for c in PATCHES[name].conflicts if c in names]
        if clash:
            raise PatchError(f"patches {name} and {', '.join(clash)} are two readings of the same e-mail "
                             f"({PATCHES[name].message_id}); choose one of them")
        missing = [r for r in PATCHES[name].requires if r not in names]
        if missing:
            raise PatchError(f"patch {name} needs {', '.join(missing)}: {PATCHES[name].title!r} builds on "
                             f"the context slot that {', '.join(missing)} adds; add {', '.join(missing)} too")
    return tuple(n for n in PATCHES if n in names)


@lru_cache(maxsize=64)
def _build(names: tuple[str, ...]) -> KvmDefinition:
    defn = BASELINE
    for n in names:
        defn = defn.apply(_APPLICABLE[n])
    return replace(defn, name=variant_name(names))  # the same unique name Machine.variant shows


def resolve(variant: str | Iterable[str]) -> KvmDefinition:
    """The KVM definition of a variant name or a set of patch names."""
    return _build(_patch_names(variant))


def variant_name(variant: str | Iterable[str]) -> str:
    """The name of exactly this kernel: unique to its patch set, and accepted back as a variant.

    A set equal to a named variant gets that name (``{"p1", "p2"}`` is ``"p2"``). Any other
    set is its patches joined with "+", starting from p1 if it has it (``"p1+p3"``) and from
    the baseline otherwise (``"baseline+p3"``), so it can never equal a named variant:
    ``{"p3"}`` alone is not ``"p3"``, which is p1+p2+p3.
    """
    names = _patch_names(variant)
    for v, pn in _VARIANT_PATCHES.items():
        if pn == names:
            return v
    joined = "+".join(names)
    return joined if "p1" in names else f"baseline+{joined}"
