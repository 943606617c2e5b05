"""Versioned register files: containers that count their writes, and a record of what a computation read.

Everything that holds machine state (the PE's registers, each ``sys_regs[]`` context, the
breakpoint and watchpoint files, a vCPU's flags and general registers) is one of the
containers below, held by a :class:`WatchedSlots` state object (the PE, a vCPU, a context).
They behave exactly as ``dict``, ``list`` and ``set`` do; in addition

* every write bumps ``version`` (and every attribute write of a state object its own), so
  "has this changed since?" is one comparison;
* a container that is *attached* (:func:`attach`) to a watch set adds its owner to that set
  on every write, and a register file also keeps the keys written, so whoever records
  changes looks only at the owners, and the registers, that were written.

Derived values (a guest's view of a register, computed by running a KVM handler without side
effects) are cached with :func:`track`: it runs the computation with the register files it is
given switched to logging twins of their classes, so the result comes with the exact list of
the registers it read (:class:`Dependency`); :func:`still_valid` says whether all of those
reads would still give the same answer, checking versions first and values only where a file
changed. The caller keys everything else the computation may read by version or by value
(:class:`kvmdbg.recorder.Recorder` does). No list of dependencies is written by hand, so a
patch that makes a handler read something new (another register's slot, a flag) is seen
without anyone updating a key.

The contract, stated once: a tracked computation may read the state objects and containers
it is keyed on; what it reads elsewhere, for example mutable per-VM state kept in a plain
attribute, it must treat as constant. Single-threaded, as the model is.

An untraced machine caches nothing: :func:`quiet` turns its state back into plain containers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from typing import Any, SupportsIndex

__all__ = ["VersionedDict", "VersionedList", "VersionedSet", "WatchedSlots", "attach", "quiet", "parts", "track",
           "still_valid", "versions", "shapes", "fields_of", "Dependency", "MISSING", "ALL_KEYS", "FILE"]

MISSING: Any = object()  # what a read of an absent key is recorded as
ALL_KEYS: Any = object()  # in VersionedDict.written: any key may have changed (update, pop, clear...)
FILE = 1000  # added to an owner for the writes of its register files (see attach)


class _Versioned:
    """What the three containers share: a version, and the watch set and owner they report to."""

    version = 0
    _watch: set[int] | None = None
    _owner = 0

    def _bump(self) -> None:
        self.version += 1
        w = self._watch
        if w is not None:
            w.add(self._owner)


# -- the containers -------------------------------------------------------------------------------
# No __slots__: a container's attributes have class-level defaults, so one rebuilt by copy or
# pickle (which fills it before restoring its attributes) works from its first write.


class VersionedDict(dict[Any, Any], _Versioned):
    """A dict that counts its writes (a register file: name -> value).

    Attached, it also keeps the keys written since its watcher last looked (``written``;
    :data:`ALL_KEYS` for a write of many at once), so the watcher need look only at those.
    """

    written: set[Any] | None = None

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self.version += 1
        w = self._watch
        if w is not None:
            w.add(self._owner)
            self.written.add(key)  # type: ignore[union-attr]  # attached: never None

    def _bump(self) -> None:
        self.version += 1
        w = self._watch
        if w is not None:
            w.add(self._owner)
            self.written.add(ALL_KEYS)  # type: ignore[union-attr]

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self._bump()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self._bump()
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        dict.update(self, *args, **kwargs)
        self._bump()

    def __ior__(self, other: Any) -> VersionedDict:  # type: ignore[misc]
        dict.update(self, other)
        self._bump()
        return self

    def pop(self, *args: Any) -> Any:
        self._bump()
        return dict.pop(self, *args)

    def popitem(self) -> tuple[Any, Any]:
        self._bump()
        return dict.popitem(self)

    def clear(self) -> None:
        dict.clear(self)
        self._bump()

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (type(self), (dict(self),), dict(vars(self)))


class VersionedList(list[Any], _Versioned):
    """A list that counts its writes (a breakpoint file, the general registers)."""

    def __setitem__(self, index: Any, value: Any) -> None:
        list.__setitem__(self, index, value)
        self._bump()

    def __delitem__(self, index: Any) -> None:
        list.__delitem__(self, index)
        self._bump()

    def __iadd__(self, other: Iterable[Any]) -> VersionedList:  # type: ignore[misc]
        list.extend(self, other)
        self._bump()
        return self

    def __imul__(self, n: SupportsIndex) -> VersionedList:
        list.__imul__(self, n)
        self._bump()
        return self

    def append(self, value: Any) -> None:
        list.append(self, value)
        self._bump()

    def extend(self, values: Iterable[Any]) -> None:
        list.extend(self, values)
        self._bump()

    def insert(self, index: SupportsIndex, value: Any) -> None:
        list.insert(self, index, value)
        self._bump()

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._bump()
        return list.pop(self, index)

    def remove(self, value: Any) -> None:
        list.remove(self, value)
        self._bump()

    def clear(self) -> None:
        list.clear(self)
        self._bump()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        list.sort(self, *args, **kwargs)
        self._bump()

    def reverse(self) -> None:
        list.reverse(self)
        self._bump()

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (type(self), (list(self),), dict(vars(self)))


class VersionedSet(set[Any], _Versioned):
    """A set that counts its writes (a vCPU's debug flags)."""

    def add(self, value: Any) -> None:
        set.add(self, value)
        self._bump()

    def discard(self, value: Any) -> None:
        set.discard(self, value)
        self._bump()

    def remove(self, value: Any) -> None:
        set.remove(self, value)
        self._bump()

    def pop(self) -> Any:
        self._bump()
        return set.pop(self)

    def clear(self) -> None:
        set.clear(self)
        self._bump()

    def update(self, *others: Iterable[Any]) -> None:
        set.update(self, *others)
        self._bump()

    def difference_update(self, *others: Iterable[Any]) -> None:
        set.difference_update(self, *others)
        self._bump()

    def intersection_update(self, *others: Iterable[Any]) -> None:
        set.intersection_update(self, *others)
        self._bump()

    def symmetric_difference_update(self, other: Iterable[Any]) -> None:
        set.symmetric_difference_update(self, other)
        self._bump()

    def __ior__(self, other: Any) -> VersionedSet:  # type: ignore[misc]
        set.update(self, other)
        self._bump()
        return self

    def __iand__(self, other: Any) -> VersionedSet:  # type: ignore[misc]
        set.intersection_update(self, other)
        self._bump()
        return self

    def __isub__(self, other: Any) -> VersionedSet:  # type: ignore[misc]
        set.difference_update(self, other)
        self._bump()
        return self

    def __ixor__(self, other: Any) -> VersionedSet:  # type: ignore[misc]
        set.symmetric_difference_update(self, other)
        self._bump()
        return self

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        return (type(self), (list(self),), dict(vars(self)))


class WatchedSlots:
    """A base for state objects with ``__slots__`` (the PE, a vCPU): attribute writes count as writes.

    A subclass names the fields that hold a container or another state object in
    ``__versioned_parts__``. An attribute write of a part
    turns a plain container into its versioned twin (a ``set()`` assigned to ``vcpu.flags``
    becomes a :class:`VersionedSet`), attached to the same watch and owner. A subclass calls
    :meth:`_init_versioning` first thing in ``__init__`` (or ``__post_init__``).
    """

    __slots__ = ("version", "shape", "_watch", "_owner")
    version: int
    shape: int
    _watch: set[int] | None
    _owner: int
    __versioned_parts__: tuple[str, ...] = ()  # fields holding a container or another state object

    def __setattr__(self, name: str, value: Any) -> None:
        part = name in self.__versioned_parts__
        if part:
            value = versioned(value)
        object.__setattr__(self, name, value)
        try:
            w = self._watch
        except AttributeError:  # still in __init__, before the bookkeeping exists
            return
        object.__setattr__(self, "version", self.version + 1)
        if part:  # another object in that place: whoever holds on to the old one must look again
            object.__setattr__(self, "shape", self.shape + 1)
        if w is not None:
            w.add(self._owner)
            if part:
                attach(value, w, self._owner)

    def __setstate__(self, state: Any) -> None:
        """Restore a copied or unpickled object as it was, bookkeeping included, without counting writes."""
        plain, slots = state if isinstance(state, tuple) else (state, None)
        for mapping in (plain, slots):
            for name, value in (mapping or {}).items():
                object.__setattr__(self, name, value)

    def _init_versioning(self) -> None:
        object.__setattr__(self, "version", 0)
        object.__setattr__(self, "shape", 0)
        object.__setattr__(self, "_owner", 0)
        object.__setattr__(self, "_watch", None)


def versioned(value: Any) -> Any:
    """``value`` as its versioned twin (a dict, list or set); anything else unchanged."""
    if isinstance(value, _Versioned):
        return value
    if type(value) is dict:
        return VersionedDict(value)
    if type(value) is list:
        return VersionedList(value)
    if type(value) is set:
        return VersionedSet(value)
    return value


_QUIET_TWINS: dict[type, type] = {}


def _quiet_twin(cls: type) -> type:
    """``cls`` with plain attribute writes: same name, same layout, no bookkeeping."""
    twin = _QUIET_TWINS.get(cls)
    if twin is None:
        twin = type(cls.__name__, (cls,), {"__slots__": (), "__setattr__": object.__setattr__,
                                           "__qualname__": cls.__qualname__, "__module__": cls.__module__})
        _QUIET_TWINS[cls] = twin
    return twin


def quiet(obj: Any) -> None:
    """Turn the state in ``obj`` into plain objects that count nothing: for state nothing caches from.

    An untraced machine keeps no cache of derived values (its snapshot computes them afresh),
    so its register files need not pay for bookkeeping: every container part becomes a plain
    ``dict``, ``list`` or ``set`` again (the interpreter's fastest paths are for exactly those)
    and the state objects write their attributes as any object does.
    """
    if not isinstance(obj, WatchedSlots):
        return
    for name in obj.__versioned_parts__:
        part = object.__getattribute__(obj, name)
        if isinstance(part, WatchedSlots):
            quiet(part)
        else:
            for plain in (dict, list, set):
                if isinstance(part, plain):
                    object.__setattr__(obj, name, plain(part))
                    break
    object.__setattr__(obj, "__class__", _quiet_twin(type(obj)))


def parts(obj: Any, out: list[Any] | None = None) -> list[Any]:
    """``obj`` and the state objects and containers reachable from its declared parts, in a list."""
    if out is None:
        out = []
    out.append(obj)
    if isinstance(obj, WatchedSlots):
        for name in obj.__versioned_parts__:
            parts(object.__getattribute__(obj, name), out)
    return out


def attach(obj: Any, watch: set[int], owner: int) -> None:
    """Report every later write to ``obj`` (and to the containers in it) as ``owner`` into ``watch``.

    A register file (a :class:`VersionedDict`) reports as ``owner + FILE`` instead, and keeps
    the keys written in its own ``written`` set, so that a watcher can tell "the vCPU's flags
    changed" from "these registers of its context changed".
    """
    for part in parts(obj):
        if isinstance(part, VersionedDict):
            part.__dict__.update(_watch=watch, _owner=owner + FILE, written=set())
        elif isinstance(part, (_Versioned, WatchedSlots)):
            object.__setattr__(part, "_watch", watch)
            object.__setattr__(part, "_owner", owner)


# -- tracked computations -------------------------------------------------------------------------

# The log of the computation being tracked (one at a time), or None: the logging twins append to it.
_log: list[Dependency] | None = None


class Dependency:
    """One read a tracked computation made of a container: ``read(obj, key)`` gave ``value`` at ``obj.version``."""

    __slots__ = ("read", "obj", "key", "value", "version")

    def __init__(self, read: Callable[[Any, Any], Any], obj: Any, key: Any, value: Any) -> None:
        self.read, self.obj, self.key, self.value = read, obj, key, value
        self.version = obj.version


def _note(read: Callable[[Any, Any], Any], obj: Any, key: Any, value: Any) -> None:
    if _log is not None:
        _log.append(Dependency(read, obj, key, value))


def _dict_get(d: Any, key: Any) -> Any:
    return dict.get(d, key, MISSING)


def _list_get(seq: Any, index: Any) -> Any:
    try:
        return list.__getitem__(seq, index)
    except IndexError:
        return MISSING


def _dict_contains(d: Any, key: Any) -> bool:
    return dict.__contains__(d, key)


def _set_contains(s: Any, key: Any) -> bool:
    return set.__contains__(s, key)


def _whole(obj: Any, key: Any) -> Any:
    return obj.version  # a read of everything (iteration, len, equality): valid while nothing is written


class _LoggingDict(VersionedDict):
    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        _note(_dict_get, self, key, value)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        value = dict.get(self, key, MISSING)
        _note(_dict_get, self, key, value)
        return default if value is MISSING else value

    def __contains__(self, key: Any) -> bool:
        found = dict.__contains__(self, key)
        _note(_dict_contains, self, key, found)
        return found

    def __iter__(self) -> Iterator[Any]:
        _note(_whole, self, None, self.version)
        return dict.__iter__(self)

    def __len__(self) -> int:
        _note(_whole, self, None, self.version)
        return dict.__len__(self)

    def keys(self) -> Any:
        _note(_whole, self, None, self.version)
        return dict.keys(self)

    def values(self) -> Any:
        _note(_whole, self, None, self.version)
        return dict.values(self)

    def items(self) -> Any:
        _note(_whole, self, None, self.version)
        return dict.items(self)


class _LoggingList(VersionedList):
    def __getitem__(self, index: Any) -> Any:
        value = list.__getitem__(self, index)
        if isinstance(index, int):
            _note(_list_get, self, index, value)
        else:
            _note(_whole, self, None, self.version)
        return value

    def __iter__(self) -> Iterator[Any]:
        _note(_whole, self, None, self.version)
        return list.__iter__(self)

    def __len__(self) -> int:
        _note(_whole, self, None, self.version)
        return list.__len__(self)

    def __contains__(self, value: Any) -> bool:
        _note(_whole, self, None, self.version)
        return list.__contains__(self, value)


class _LoggingSet(VersionedSet):
    def __contains__(self, value: Any) -> bool:
        found = set.__contains__(self, value)
        _note(_set_contains, self, value, found)
        return found

    def __iter__(self) -> Iterator[Any]:
        _note(_whole, self, None, self.version)
        return set.__iter__(self)

    def __len__(self) -> int:
        _note(_whole, self, None, self.version)
        return set.__len__(self)

    def __bool__(self) -> bool:
        _note(_whole, self, None, self.version)
        return set.__len__(self) > 0


_TWINS: dict[type, type] = {VersionedDict: _LoggingDict, VersionedList: _LoggingList, VersionedSet: _LoggingSet}


def track(containers: Iterable[Any], compute: Callable[[], Any]) -> tuple[Any, list[Dependency]]:
    """Run ``compute()`` and return its result with every read it made of ``containers``, deduplicated.

    The containers are switched to logging twins of their classes for the duration, and always
    switched back. Reads of anything else are not seen: a caller keys the result on the
    versions of the state objects it comes from as well (see :class:`kvmdbg.recorder.Recorder`).
    """
    global _log
    swapped: list[tuple[Any, type]] = []
    for c in containers:
        cls = type(c)
        twin = _TWINS.get(cls)
        if twin is not None:
            c.__class__ = twin
            swapped.append((c, cls))
    outer, _log = _log, []
    try:
        result = compute()
        log = _log
    finally:
        _log = outer
        for c, cls in swapped:
            c.__class__ = cls
    seen: set[tuple[Any, int, Any]] = set()
    deps: list[Dependency] = []
    for d in log:
        key = (d.read, id(d.obj), d.key)
        if key not in seen:
            seen.add(key)
            deps.append(d)
    return result, deps


def versions(objects: Iterable[Any]) -> tuple[int, ...]:
    """The versions of ``objects`` (containers and state objects), in order."""
    return tuple(map(_version, objects))


def shapes(objects: Iterable[Any]) -> tuple[int, ...]:
    """The shapes of state objects: how often one of their parts was replaced by another object."""
    return tuple(map(_shape, objects))


_version = attrgetter("version")
_shape = attrgetter("shape")


def fields_of(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving the plain (non-part) fields of a WatchedSlots dataclass, by value, in one C call."""
    names = [n for n in getattr(cls, "__dataclass_fields__", {}) if n not in getattr(cls, "__versioned_parts__", ())]
    getter = attrgetter(*names)
    return (lambda obj: (getter(obj),)) if len(names) == 1 else getter


def still_valid(deps: Iterable[Dependency]) -> bool:
    """Whether every read in ``deps`` would give the same answer now."""
    for d in deps:
        if d.obj.version != d.version and d.read(d.obj, d.key) != d.value:
            return False
    return True
