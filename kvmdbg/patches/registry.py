"""Where patches register themselves.

Each patch module ends with ``PATCH = register(Patch(...))``; :mod:`kvmdbg.patches`
imports every module of the package, so a new patch is one new file and nothing else
changes. :func:`register` refuses a second patch of the same name; :func:`registered`
checks that every base, requirement and conflict a patch names exists; :func:`ordered`
gives the order patches apply in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from kvmdbg.errors import DuplicateVariantError
from kvmdbg.kvm.definition import Patch

__all__ = ["register", "registered", "ordered"]

_PATCHES: dict[str, Patch] = {}


def register(patch: Patch) -> Patch:
    """Add ``patch`` to the registry and return it."""
    if patch.name in _PATCHES and _PATCHES[patch.name] is not patch:
        raise DuplicateVariantError(f"two patches are named {patch.name!r}; give the new one another name")
    if patch.name == "baseline" or "+" in patch.name or "," in patch.name:
        raise ValueError(f"{patch.name!r} cannot name a patch: 'baseline' is the unpatched kernel, and '+' "
                         "and ',' join patch names")
    _PATCHES[patch.name] = patch
    return patch


def registered() -> Mapping[str, Patch]:
    """Every registered patch, in the order they apply in (see :func:`ordered`)."""
    for patch in _PATCHES.values():
        missing = [n for n in patch.needs + patch.conflicts if n not in _PATCHES]
        if missing:
            raise ValueError(f"patch {patch.name} names {', '.join(missing)} (as base, requirement or conflict), "
                             "which no module of kvmdbg.patches registers")
    return MappingProxyType({n: _PATCHES[n] for n in ordered(_PATCHES)})


def ordered(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` in the order they apply: what a patch needs first, then by date, e-mail and name.

    The date and Message-Id put a series in its own order (patch 1/3 before 2/3); two readings
    of one e-mail (``p2`` and ``p2-intended``) then sort by name.
    """
    todo = sorted(set(names), key=lambda n: (_PATCHES[n].date, _PATCHES[n].message_id, n))
    out: list[str] = []
    while todo:
        for n in todo:
            if all(need in out or need not in todo for need in _PATCHES[n].needs):
                out.append(n)
                todo.remove(n)
                break
        else:  # pragma: no cover - register() only accepts needs that already exist, so no cycle can form
            raise ValueError(f"patches {', '.join(todo)} need each other")
    return tuple(out)
