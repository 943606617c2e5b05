"""Events, traces and snapshots: what a Machine records as it runs.

An :class:`Event` is one kernel function (or architectural event) that ran,
with the watched register values it changed. A :class:`Trace` keeps events,
optionally only the most recent N (a ring buffer whose evicted events are
folded into a base state, so memory stays flat and the DataFrame is still
exact). pandas is imported only by :meth:`Trace.to_dataframe`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Event", "Trace", "Snapshot", "Change", "LOCATIONS", "WatchKey"]

LOCATIONS = ("physical", "vcpu", "host", "guest_view")

# (location, register, vcpu index or -1)
WatchKey = tuple[str, str, int]


class Event(NamedTuple):
    """One step: ``function`` is the kernel function it models, ``phase`` the switch phase.

    Immutable. A named tuple rather than a frozen dataclass: a trace makes one per kernel
    function, and a tuple is built in a fraction of the time a frozen dataclass takes.
    """

    step: int
    phase: str
    function: str
    file: str
    detail: str
    vcpu: int | None
    changes: tuple[tuple[WatchKey, int | None], ...] = ()
    patch_note: str = ""

    def __str__(self) -> str:
        return f"[{self.step}] {self.phase:<9} {self.function}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Change:
    location: str
    register: str
    vcpu: int | None
    before: int | None
    after: int | None

    def __str__(self) -> str:
        def fmt(v: int | None) -> str:
            return "-" if v is None else hex(v)

        who = f"vcpu{self.vcpu} " if self.vcpu is not None else ""
        return f"{who}{self.location} {self.register}: {fmt(self.before)} -> {fmt(self.after)}"


@dataclass(frozen=True)
class Snapshot:
    """An immutable picture of the watched state: ``values[(location, register, vcpu)]``.

    ``values`` is a read-only mapping (a ``MappingProxyType`` over a dict nobody else holds).
    """

    values: Mapping[WatchKey, int | None]
    where: tuple[str, ...]
    loaded: tuple[bool, ...]
    step: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.values, MappingProxyType):
            object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def __deepcopy__(self, memo: dict[int, Any]) -> Snapshot:
        return self  # immutable all the way down: a copy would be indistinguishable

    def __copy__(self) -> Snapshot:
        return self

    def get(self, location: str, register: str, vcpu: int | None = None) -> int | None:
        return self.values.get((location, register.upper(), -1 if vcpu is None else vcpu))

    def diff(self, other: Snapshot) -> list[Change]:
        """What changed from this snapshot to ``other``."""
        out = []
        for key in sorted(set(self.values) | set(other.values)):
            a, b = self.values.get(key), other.values.get(key)
            if a != b:
                out.append(Change(key[0], key[1], None if key[2] < 0 else key[2], a, b))
        # Where each vCPU runs (1 = in the guest) and whether it is loaded, as 0/1 changes.
        for i, (wa, wb) in enumerate(zip(self.where, other.where, strict=False)):
            if wa != wb:
                out.append(Change("where", "in_guest", i, int(wa == "guest"), int(wb == "guest")))
        for i, (la, lb) in enumerate(zip(self.loaded, other.loaded, strict=False)):
            if la != lb:
                out.append(Change("kvm", "loaded", i, int(la), int(lb)))
        return out


def _text_column_maker(pd: Any) -> Callable[[list[str], Any], Any]:
    """A function building a text column from its distinct strings and one code per row.

    The column has the dtype pandas gives text by default (``str`` on pandas 3, ``object`` on
    pandas 2), so the frame is what a DataFrame of Python strings would be. With pandas 3's
    pyarrow-backed ``str``, the strings are taken straight into an Arrow array; otherwise the
    rows share the Python string objects. Either way no Python object per row is made.
    """
    import numpy as np

    dtype = pd.Series(["x"]).dtype
    if getattr(dtype, "storage", None) == "pyarrow":
        import pyarrow as pa

        def arrow(strings: list[str], codes: Any) -> Any:
            return pd.array(pa.array(strings, type=pa.large_string()).take(pa.array(codes)), dtype=dtype)
        return arrow

    def objects(strings: list[str], codes: Any) -> Any:
        return np.array(strings, dtype=object)[codes]
    return objects


@dataclass
class Trace:
    """The events of one Machine; ``maxlen`` keeps only the most recent ones."""

    maxlen: int | None = None
    enabled: bool = True
    _events: deque[Event] = field(default_factory=deque)
    _base: dict[WatchKey, int | None] = field(default_factory=dict)
    dropped: int = 0

    def append(self, event: Event) -> None:
        if not self.enabled:
            return
        if self.maxlen is not None and len(self._events) >= self.maxlen:
            old = self._events.popleft()
            for key, value in old.changes:
                self._base[key] = value
            self.dropped += 1
        self._events.append(event)

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __getitem__(self, i: int) -> Event:
        return self._events[i]

    @property
    def base(self) -> Mapping[WatchKey, int | None]:
        return MappingProxyType(self._base)

    def functions(self) -> list[str]:
        return [e.function for e in self._events]

    def _walk(self) -> Iterator[tuple[Event, dict[WatchKey, int | None]]]:
        """Each event with the state after it: one dict, updated in place (for this module only)."""
        state = dict(self._base)
        for e in self._events:
            for key, value in e.changes:
                state[key] = value
            yield e, state

    def states(self) -> Iterator[tuple[Event, Mapping[WatchKey, int | None]]]:
        """Each event with the full watched state right after it, as a read-only mapping of its own."""
        for e, state in self._walk():
            yield e, MappingProxyType(dict(state))

    def to_records(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for e, state in self._walk():
            for (loc, reg, vcpu), value in state.items():
                rows.append({
                    "step": e.step, "phase": e.phase, "function": e.function, "file": e.file,
                    "vcpu": None if vcpu < 0 else vcpu, "location": loc, "register": reg, "value": value,
                    "detail": e.detail,
                })
        return rows

    def to_dataframe(self) -> pd.DataFrame:
        """Long format: one row per (step, location, register[, vcpu]) with its value after the step.

        The result is a :class:`kvmdbg.frames.HexFrame`: a DataFrame whose ``value`` column holds
        the integers, displayed in hex.

        Built column by column from the events' changes, never as one dict per row: the state
        after each event is a row of a (events x keys) integer array (a key's value carried
        forward until an event changes it), and the per-event columns are repeated per key, so
        their strings are shared, not copied. The rows are those of :meth:`to_records`, in the
        same order: each event's keys in the order they first appeared.
        """
        import numpy as np
        import pandas as pd

        from kvmdbg.frames import HexFrame

        events = self._events
        order: dict[WatchKey, int] = {}
        for key in self._base:
            order.setdefault(key, len(order))
        for e in events:
            for key, _value in e.changes:
                if key not in order:
                    order[key] = len(order)
        n, width = len(events), len(order)
        values = np.zeros((n, width), dtype=np.uint64)
        missing = np.ones((n, width), dtype=bool)  # None: a location that keeps no copy
        known = np.zeros(n, dtype=np.int64)  # how many keys the state holds after each event
        row_v = np.zeros(width, dtype=np.uint64)
        row_m = np.ones(width, dtype=bool)
        for key, value in self._base.items():
            j = order[key]
            if value is not None:
                row_v[j], row_m[j] = value, False
        seen = len(self._base)
        for i, e in enumerate(events):
            for key, value in e.changes:
                j = order[key]
                if j >= seen:
                    seen = j + 1
                if value is None:
                    row_m[j] = True
                else:
                    row_v[j], row_m[j] = value, False
            values[i] = row_v
            missing[i] = row_m
            known[i] = seen

        keys = list(order)
        vcpu = np.array([k[2] for k in keys], dtype=np.int64)
        if n and int(known.min()) == width:  # every event shows every key: the usual case
            cols = np.tile(np.arange(width), n)
            take: Any = slice(None)
        else:
            present = np.arange(width)[None, :] < known[:, None]
            cols = np.nonzero(present)[1]
            take = present.ravel()
        text = _text_column_maker(pd)

        def per_event(attr: str) -> Any:
            """An event field, once per row of that event, as a text column."""
            codes: dict[str, int] = {}
            per = np.fromiter((codes.setdefault(getattr(e, attr), len(codes)) for e in events), dtype=np.int64,
                              count=n)
            return text(list(codes), np.repeat(per, known))

        df = HexFrame({"step": np.repeat(np.fromiter((e.step for e in events), dtype=np.int64, count=n), known)})
        df["phase"] = per_event("phase")
        df["function"] = per_event("function")
        df["file"] = per_event("file")
        df["vcpu"] = pd.arrays.IntegerArray(vcpu[cols], vcpu[cols] < 0)
        df["location"] = text([k[0] for k in keys], cols)
        df["register"] = text([k[1] for k in keys], cols)
        # The values as unsigned 64-bit integers with a mask, never through float64 (which
        # would round register values above 2**53).
        df["value"] = pd.arrays.IntegerArray(values.ravel()[take], missing.ravel()[take])
        df["detail"] = per_event("detail")
        return df

    def clear(self) -> None:
        """Forget the events so far, keeping the state they led to as the new base.

        Events after a clear record only what they change, so the base must hold the state
        at the clear: otherwise the DataFrame would lose every watched value that did not
        change afterwards.
        """
        state = dict(self._base)
        for e in self._events:
            state.update(e.changes)
        self._events.clear()
        self._base = state
