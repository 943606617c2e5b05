"""The patches as data, and the variants built from them.

Every module of this package is one patch that registers itself
(:mod:`kvmdbg.patches.registry`): the three v1 patches, the intended reading of
patch 2, the v5 series that replaced them (``UPSTREAM``), and later work on the same
registers. ``PATCHES`` is the registry; :data:`REGISTRY` names the variants, one line
each. A variant is one of :data:`VARIANTS` or a set of patch names; :func:`resolve`
turns either into a :class:`~kvmdbg.kvm.definition.KvmDefinition`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from types import MappingProxyType

from kvmdbg.errors import PatchError, PatchTypeError
from kvmdbg.kvm.definition import BASELINE, KvmDefinition, Patch, diff
from kvmdbg.patches.registry import ordered, registered

__all__ = ["PATCHES", "UPSTREAM", "VARIANTS", "VARIANT_DESCRIPTIONS", "REGISTRY", "Variant", "resolve",
           "variant_name", "diff"]

# Every module of this package but the registry is a patch that registers itself on import.
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "registry":
        importlib.import_module(f"{__name__}.{_module}")

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
    Variant("writable-dfr0", ("upstream", "writable-dfr0"),
            "the 5.18 design plus ID_AA64DFR0_EL1 writable as in Linux 6.7: one value per VM that userspace "
            "may lower (DebugVer, PMUVer) until the VM first runs, so a VM saved on an older kernel restores"),
)

PATCHES: Mapping[str, Patch] = registered()
"""Every registered patch, by name, in the order they apply in."""
UPSTREAM: Patch = PATCHES["upstream"]

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
    names = {n.strip().lower() for n in items} - {"baseline"}
    unknown = sorted(names - set(PATCHES))
    if unknown:
        raise PatchError(f"unknown patch name(s) {', '.join(map(repr, unknown))}; the patches are "
                         f"{', '.join(PATCHES)}")
    _check_one_design(names)
    for name in sorted(names):
        patch = PATCHES[name]
        clash = [c for c in sorted(names) if c in patch.conflicts or name in PATCHES[c].conflicts]
        if clash:
            raise PatchError(f"patches {name} and {', '.join(clash)} cannot be applied together"
                             + (f": they are two readings of the same e-mail ({patch.message_id})"
                                if all(PATCHES[c].message_id == patch.message_id for c in clash) else "")
                             + "; choose one of them")
        missing = [r for r in patch.needs if r not in names]
        if missing:
            raise PatchError(f"patch {name} needs {', '.join(missing)}: {patch.title!r} is written on top of "
                             f"{', '.join(missing)}; add {', '.join(missing)} too")
    return ordered(names)


def _check_one_design(names: set[str]) -> None:
    """Patches written straight against the baseline must all be of one series (one design)."""
    roots = sorted({PATCHES[n].series: n for n in sorted(names) if PATCHES[n].base == "baseline"}.items())
    if len(roots) > 1:
        (sa, a), (sb, b) = roots[0], roots[1]
        raise PatchError(f"{a!r} ({sa}) and {b!r} ({sb}) are separate designs of the same code and cannot be "
                         f"mixed; choose the patches of one series, or one named variant ({', '.join(VARIANTS)})")


@lru_cache(maxsize=64)
def _build(names: tuple[str, ...]) -> KvmDefinition:
    defn = BASELINE
    for n in names:
        defn = defn.apply(PATCHES[n])
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
