"""The recorder: which watched values a step changed, found from what was written.

A trace shows, after every step, each watched register at each location: the PE, KVM's saved
host copy, each vCPU's context and each guest's view (API.md: the trace columns). Reading all
of them at every step costs in proportion to the number of vCPUs, and guest views are not
stored anywhere: each is computed by running the variant's handler without side effects.

So the recorder works from the writes instead. The machine's state lives in versioned
containers (:mod:`kvmdbg.versioned`) attached to one watch set, each with its owner: the PE,
the host context, or a vCPU. At each event the recorder re-reads only the owners that wrote,
and re-validates only the guest views whose recorded reads touch one of them; a view is
recomputed only when one of the reads it made would now give another answer. An event then
holds exactly the keys whose values changed, in the fixed order of :attr:`Recorder.keys`, and
the long DataFrame is derived from those changes (:meth:`kvmdbg.trace.Trace.to_dataframe`).

What a guest view may depend on: its own vCPU (every field and container), the PE's and the
host context's registers, and constants (the definition, the host mode, the CPU profile).
Nothing else is tracked: not the PE's execution state (EL, PSTATE), and not other vCPUs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kvmdbg.arch.registers import REGISTERS, SysReg
from kvmdbg.kvm.context import Vcpu
from kvmdbg.versioned import (
    Dependency,
    WatchedSlots,
    attach,
    fields_of,
    parts,
    quiet,
    shapes,
    still_valid,
    track,
    versions,
)

if TYPE_CHECKING:
    from kvmdbg.cpu.pe import PhysicalCPU
    from kvmdbg.kvm.context import CpuContext, DebugRegs

__all__ = ["Recorder", "WATCHED", "WATCHED_PHYSICAL", "WATCHED_CONTEXT", "WATCHED_VIEW", "PE", "HOST"]

# The registers every event records, per location (API.md: trace columns).
WATCHED_PHYSICAL = ("OSLSR_EL1", "OSDLR_EL1", "MDSCR_EL1", "MDCR_EL2")
WATCHED_CONTEXT = ("OSLSR_EL1", "MDSCR_EL1")
WATCHED_VIEW = ("OSLSR_EL1", "OSDLR_EL1", "MDSCR_EL1")
WATCHED = {"physical": WATCHED_PHYSICAL, "vcpu": WATCHED_CONTEXT, "host": WATCHED_CONTEXT,
           "guest_view": WATCHED_VIEW}

PE, HOST = -1, -2  # owners in the watch set; a vCPU is its index
_vcpu_fields = fields_of(Vcpu)

WatchKey = tuple[str, str, int]
View = Callable[[int, SysReg], "int | None"]


class _ViewCache:
    """A vCPU's guest views and everything they were computed from.

    ``deps``: each read of a register file (the PE's registers, the vCPU's and the host's
    ``sys_regs``), to be checked by value; ``fields``: the vCPU's plain fields, by value;
    ``containers``: the vCPU's other containers (flags, debug registers...), by version;
    ``holders``: the state objects holding them, by shape (a part replaced by another object).
    """

    __slots__ = ("values", "deps", "vcpu", "fields", "containers", "versions", "holders", "shapes")

    def __init__(self, values: tuple[int | None, ...], deps: list[Dependency], vcpu: Vcpu,
                 containers: Sequence[object], holders: Sequence[object]) -> None:
        self.values, self.deps, self.vcpu = values, deps, vcpu
        self.fields = _vcpu_fields(vcpu)
        self.containers, self.versions = containers, versions(containers)
        self.holders, self.shapes = holders, shapes(holders)

    def valid(self, vcpu_changed: bool = True) -> bool:
        """Whether the views still hold; ``vcpu_changed=False`` skips the checks of the vCPU's own state."""
        if vcpu_changed and (_vcpu_fields(self.vcpu) != self.fields or versions(self.containers) != self.versions):
            return False
        return shapes(self.holders) == self.shapes and still_valid(self.deps)


class Recorder:
    """The watched values of one machine: ``current()`` for a snapshot, ``changes()`` for an event.

    ``incremental`` attaches the state to a watch set, so that ``changes()`` looks only at the
    owners that wrote since the last call; without it (an untraced machine) the containers stop
    counting (:func:`kvmdbg.versioned.quiet`) and views are computed afresh for each snapshot.
    """

    def __init__(self, pe: PhysicalCPU, host_ctxt: CpuContext, host_debug: DebugRegs, vcpus: Sequence[Vcpu],
                 view: View, host_kept: frozenset[str], *, incremental: bool) -> None:
        self.pe, self.host_ctxt, self.host_debug, self.vcpus = pe, host_ctxt, host_debug, vcpus
        self._view = view
        self._host_kept = host_kept
        self._view_regs = tuple(REGISTERS[r] for r in WATCHED_VIEW)
        self.keys: tuple[WatchKey, ...] = (
            tuple(("physical", r, -1) for r in WATCHED_PHYSICAL)
            + tuple(("host", r, -1) for r in WATCHED_CONTEXT)
            + tuple(key for i in range(len(vcpus)) for key in
                    [("vcpu", r, i) for r in WATCHED_CONTEXT] + [("guest_view", r, i) for r in WATCHED_VIEW])
        )
        n_phys, n_ctxt, n_view = len(WATCHED_PHYSICAL), len(WATCHED_CONTEXT), len(WATCHED_VIEW)
        self._host_at = n_phys
        per_vcpu = n_ctxt + n_view
        self._ctxt_at = [n_phys + n_ctxt + i * per_vcpu for i in range(len(vcpus))]
        self._view_at = [at + n_ctxt for at in self._ctxt_at]
        self._cache: dict[int, _ViewCache] = {}
        self._shared_readers: set[int] = set()  # vCPUs whose cached views read a PE or host register
        self._last: list[int | None] | None = None  # the values at the last recorded event
        self._dirty: set[int] = set()
        self._incremental = incremental
        if not incremental:
            # Nothing is cached for an untraced machine (views are computed afresh when asked
            # for), so its containers need not count their writes: the untraced path stays fast.
            for obj in (pe, host_ctxt, host_debug, *vcpus):
                quiet(obj)
        else:
            attach(pe, self._dirty, PE)
            attach(host_ctxt, self._dirty, HOST)
            attach(host_debug, self._dirty, HOST)
            for v in vcpus:
                attach(v, self._dirty, v.index)

    # -- reading --------------------------------------------------------------------------------

    def _physical(self) -> list[int | None]:
        regs = self.pe.regs
        return [regs[r] for r in WATCHED_PHYSICAL]

    def _host(self) -> list[int | None]:
        host, kept = self.host_ctxt.sys_regs, self._host_kept
        return [host.get(r) if r in kept else None for r in WATCHED_CONTEXT]

    def _context(self, i: int) -> list[int | None]:
        ctxt = self.vcpus[i].ctxt.sys_regs
        return [ctxt.get(r) for r in WATCHED_CONTEXT]

    def views(self, i: int, vcpu_changed: bool = True) -> tuple[int | None, ...]:
        """vCPU ``i``'s guest views of the watched registers, recomputed only when their inputs changed.

        A view is computed by KVM's handler from the vCPU, the PE and the host context. Reads of
        the three register files (the PE's registers, the vCPU's and the host's ``sys_regs``)
        are recorded one by one, so a write of some other register does not count; the vCPU's
        plain fields count by value and its other containers (flags, debug registers) by
        version. The PE's execution state (EL, PSTATE) is not an input: a view is a register
        value, whatever the PE runs.
        """
        if not self._incremental:
            return tuple(self._view(i, r) for r in self._view_regs)
        cached = self._cache.get(i)
        if cached is not None and cached.valid(vcpu_changed):
            return cached.values
        v, pe, host = self.vcpus[i], self.pe, self.host_ctxt
        files = (pe.regs, v.ctxt.sys_regs, host.sys_regs)
        skip = {id(f) for f in files}
        objs = [o for o in parts(v) + [pe, host] if id(o) not in skip]
        holders = [o for o in objs if isinstance(o, WatchedSlots)]
        containers = [o for o in objs if not isinstance(o, WatchedSlots)]
        view, regs = self._view, self._view_regs
        values: tuple[int | None, ...]
        values, deps = track(files, lambda: tuple(view(i, r) for r in regs))
        self._cache[i] = _ViewCache(values, deps, v, containers, holders)
        if any(d.obj is pe.regs or d.obj is host.sys_regs for d in deps):
            self._shared_readers.add(i)
        else:
            self._shared_readers.discard(i)
        return values

    def current(self) -> list[int | None]:
        """Every watched value now, in the order of :attr:`keys` (no effect on what ``changes()`` reports)."""
        out = self._physical() + self._host()
        for i in range(len(self.vcpus)):
            out += self._context(i)
            out += self.views(i)
        return out

    # -- recording --------------------------------------------------------------------------------

    def changes(self) -> tuple[tuple[WatchKey, int | None], ...]:
        """The watched values that differ from those at the last call, as (key, value) in key order."""
        last = self._last
        if last is None:
            self._last = self.current()
            self._dirty.clear()
            return tuple(zip(self.keys, self._last, strict=True))
        dirty = self._dirty
        if not dirty:
            return ()
        owners = tuple(dirty)
        dirty.clear()
        changed: list[int] = []
        written: list[int] = []  # vCPUs that wrote
        shared = False
        for o in owners:
            if o == PE:
                self._compare(0, self._physical(), changed)
                shared = True
            elif o == HOST:
                self._compare(self._host_at, self._host(), changed)
                shared = True
            elif 0 <= o < len(self.vcpus):
                self._compare(self._ctxt_at[o], self._context(o), changed)
                written.append(o)
        # Views to check: those of every vCPU that wrote, and, when the PE or the host context
        # wrote, those whose last computation read a PE or host register. A view whose inputs
        # are all unchanged takes the same path and reads the same values, so no other view
        # can have changed (the vCPU KVM has loaded reads the PE; an unloaded one reads memory).
        for i in written:
            self._compare(self._view_at[i], self.views(i), changed)
        if shared:
            for i in self._shared_readers.difference(written):
                self._compare(self._view_at[i], self.views(i, vcpu_changed=False), changed)
        if not changed:
            return ()
        changed.sort()
        keys = self.keys
        return tuple((keys[k], last[k]) for k in changed)

    def _compare(self, at: int, values: Sequence[int | None], changed: list[int]) -> None:
        last = self._last
        assert last is not None
        for k, v in enumerate(values, at):
            if last[k] != v:
                last[k] = v
                changed.append(k)
