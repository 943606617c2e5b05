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
    ALL_KEYS,
    FILE,
    Dependency,
    VersionedDict,
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

PE, HOST = -1, -2  # owners in the watch set; a vCPU is its index (its register file: + FILE)
_PHYSICAL = frozenset(WATCHED_PHYSICAL)
_ENTRIES = 4  # cache entries kept per vCPU: the views in the host, in the guest, and a couple more
_CONTEXT = frozenset(WATCHED_CONTEXT)


def _reader(read: Callable[[int], list[int | None]], i: int) -> Callable[[], list[int | None]]:
    return lambda: read(i)
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

    __slots__ = ("values", "deps", "vcpu", "fields", "containers", "versions", "holders", "shapes", "read", "shared")

    def __init__(self, values: tuple[int | None, ...], deps: list[Dependency], vcpu: Vcpu,
                 containers: Sequence[object], holders: Sequence[object]) -> None:
        self.values, self.deps, self.vcpu = values, deps, vcpu
        self.fields = _vcpu_fields(vcpu)
        self.containers, self.versions = containers, versions(containers)
        self.holders, self.shapes = holders, shapes(holders)
        self.shared = False  # whether the views read a PE or host register
        self.read: dict[int, set[object]] = {}  # id(register file) -> keys read (ALL_KEYS: read whole)
        for d in deps:
            self.read.setdefault(id(d.obj), set()).add(ALL_KEYS if d.key is None else d.key)

    def touches(self, file: object, written: set[object]) -> bool:
        """Whether the views read any of the keys ``written`` in register file ``file``."""
        keys = self.read.get(id(file))
        return keys is not None and (ALL_KEYS in keys or ALL_KEYS in written or not keys.isdisjoint(written))

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
        self._cache: dict[int, list[_ViewCache]] = {}  # vCPU -> its views' cache entries, most recent first
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
        entries = self._cache.setdefault(i, [])
        # The most recent entry was checked at the vCPU's last write, so when the vCPU has not
        # written since, only its register reads need checking; older entries (the views as they
        # were while the vCPU ran, say, kept for when it runs again) are checked in full.
        for k, entry in enumerate(entries):
            if entry.valid(vcpu_changed if k == 0 else True):
                if k:
                    entries.insert(0, entries.pop(k))
                    self._note_shared(i, entry)
                return entry.values
        v, pe, host = self.vcpus[i], self.pe, self.host_ctxt
        files = (pe.regs, v.ctxt.sys_regs, host.sys_regs)
        skip = {id(f) for f in files}
        objs = [o for o in parts(v) + [pe, host] if id(o) not in skip]
        holders = [o for o in objs if isinstance(o, WatchedSlots)]
        containers = [o for o in objs if not isinstance(o, WatchedSlots)]
        view, regs = self._view, self._view_regs
        values: tuple[int | None, ...]
        values, deps = track(files, lambda: tuple(view(i, r) for r in regs))
        entry = _ViewCache(values, deps, v, containers, holders)
        entry.shared = any(d.obj is pe.regs or d.obj is host.sys_regs for d in deps)
        entries.insert(0, entry)
        del entries[_ENTRIES:]
        self._note_shared(i, entry)
        return values

    def _note_shared(self, i: int, entry: _ViewCache) -> None:
        if entry.shared:
            self._shared_readers.add(i)
        else:
            self._shared_readers.discard(i)

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
            for f in (self.pe.regs, self.host_ctxt.sys_regs, *(v.ctxt.sys_regs for v in self.vcpus)):
                written = getattr(f, "written", None)
                if written:
                    written.clear()
            return tuple(zip(self.keys, self._last, strict=True))
        dirty = self._dirty
        if not dirty:
            return ()
        owners = tuple(dirty)
        dirty.clear()
        changed: list[int] = []
        full: list[int] = []  # vCPUs whose own state (fields, flags, debug registers) was written
        partial: set[int] = set()  # vCPUs whose views read a register that was written
        cache = self._cache
        for o in owners:
            if o >= FILE + HOST:  # a register file: look at the keys it says were written
                base = o - FILE
                if base == PE:
                    file: VersionedDict = self.pe.regs  # type: ignore[assignment]
                    watched, at, read = _PHYSICAL, 0, self._physical
                elif base == HOST:
                    file = self.host_ctxt.sys_regs  # type: ignore[assignment]
                    watched, at, read = _CONTEXT, self._host_at, self._host
                else:
                    file = self.vcpus[base].ctxt.sys_regs  # type: ignore[assignment]
                    watched, at = _CONTEXT, self._ctxt_at[base]
                    read = _reader(self._context, base)
                written = file.written
                if not written:
                    continue
                if ALL_KEYS in written or not watched.isdisjoint(written):
                    self._compare(at, read(), changed)
                for j in (self._shared_readers if base < 0 else (base,)):
                    entries = cache.get(j)
                    if not entries or entries[0].touches(file, written):
                        partial.add(j)
                written.clear()
            elif o == PE:  # the PE's own fields (its EL...), or its register file replaced
                self._compare(0, self._physical(), changed)
                partial |= self._shared_readers
            elif o == HOST:
                self._compare(self._host_at, self._host(), changed)
                partial |= self._shared_readers
            elif 0 <= o < len(self.vcpus):
                self._compare(self._ctxt_at[o], self._context(o), changed)
                full.append(o)
        # A view whose inputs are all unchanged takes the same path and reads the same values,
        # so only these views can have changed (the vCPU KVM has loaded reads the PE; an unloaded
        # one reads memory: _shared_readers is taken from what each view's last computation read).
        for i in full:
            self._compare(self._view_at[i], self.views(i), changed)
        for i in partial.difference(full):
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
