"""World switches one kernel function at a time: what ``Machine.step()``, ``begin()`` and ``run_to()`` drive.

A switch (vcpu_load, vcpu_put, enter_guest, exit_guest) is one of KVM's operations, a
generator of steps; the stepper holds the one in progress and advances it one function per
call, recording each. Any other operation of the machine first finishes the switch in progress.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from types import MappingProxyType
from typing import TYPE_CHECKING

from kvmdbg.arch.esr import EC, esr
from kvmdbg.errors import ArgumentTypeError, ArgumentValueError
from kvmdbg.kvm.runtime import Kvm, Step

if TYPE_CHECKING:
    from kvmdbg.core import MachineCore
    from kvmdbg.trace import Event

__all__ = ["Stepper"]


def _shared(kvm: Kvm, defn: object) -> dict[int, object]:
    """A deepcopy memo that shares what KVM holds of its (immutable) definition instead of copying it."""
    memo: dict[int, object] = {id(defn): defn}
    held: Iterable[object]
    try:
        held = vars(kvm).values()
    except TypeError:  # a Kvm with __slots__: nothing else to share
        held = ()
    for value in held:
        if isinstance(value, MappingProxyType):  # a table of the definition (a mapping proxy cannot be copied)
            memo[id(value)] = value
    return memo


class Stepper:
    """The world switch in progress on one machine, if any."""

    def __init__(self, machine: MachineCore) -> None:
        self.m = machine
        self._pending: Iterator[Step] | None = None
        self._pending_name = ""
        self._pending_vcpu = 0
        self._pending_left = 0  # functions of the pending switch not yet run (see begin())

    @property
    def in_progress(self) -> bool:
        return self._pending is not None

    def finish_pending(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            for s in pending:
                self.m.record(s)

    def next_switch(self, vcpu: int = 0) -> str:
        """The world switch ``step()`` would start next: vcpu_load, enter_guest or exit_guest."""
        if self._pending is not None:
            return self._pending_name
        v = self.m.kvm.vcpus[self.m.vcpu_index(vcpu)]
        return "exit_guest" if v.running else ("enter_guest" if v.loaded else "vcpu_load")

    def begin(self, switch: str, vcpu: int = 0) -> None:
        """Start a world switch to be advanced with ``step()``."""
        i = self.m.vcpu_index(vcpu)
        ops: dict[str, Callable[[Kvm], Iterator[Step]]] = {
            "vcpu_load": lambda kvm: kvm.vcpu_load(i),
            "vcpu_put": lambda kvm: kvm.vcpu_put(i),
            "enter_guest": lambda kvm: kvm.enter(i),
            "exit_guest": lambda kvm: kvm.exit(i, esr(EC.UNKNOWN, 0, il=False),
                                               "host interrupt: the guest exits to the host"),
        }
        if not isinstance(switch, str):
            raise ArgumentTypeError(f"switch must be a str, one of {', '.join(ops)}; not "
                                    f"{type(switch).__name__} ({switch!r})")
        if switch not in ops:
            raise ArgumentValueError(f"unknown world switch switch={switch!r}; choose one of {', '.join(ops)}")
        self.finish_pending()
        # How many functions this switch runs from this state: found by running it on a copy of
        # KVM and the PE (the definition is shared: it is immutable), so step() knows which
        # function is the last without a table of last functions to keep in step with runtime.py.
        scratch = copy.deepcopy(self.m.kvm, _shared(self.m.kvm, self.m.defn))
        self._pending_left = sum(1 for _ in ops[switch](scratch))
        self._pending = iter(ops[switch](self.m.kvm))
        self._pending_name = switch
        self._pending_vcpu = i

    def step(self, vcpu: int = 0) -> Event | None:
        """Advance one phase of the switch in progress, or start the next natural one."""
        self.m.vcpu_index(vcpu)  # a bad index is refused even while a switch is pending
        if self._pending is None:
            self.begin(self.next_switch(vcpu), vcpu)
        assert self._pending is not None
        s = next(self._pending, None)
        if s is None:
            self._pending = None
            return self.step(vcpu)
        self._pending_left -= 1
        if self._pending_left <= 0:
            self._pending = None  # the switch is complete (nothing runs after its last function)
        return self.m.record(s)

    def run_to(self, where: str, vcpu: int = 0) -> list[Event]:
        """Step until the vCPU is in the guest (``where="guest"``) or back in the host (``"host"``)."""
        if not isinstance(where, str):
            raise ArgumentTypeError(f"where must be 'guest' or 'host', not {type(where).__name__} ({where!r})")
        if where not in ("guest", "host"):
            raise ArgumentValueError(f"run_to() takes where='guest' or where='host', not {where!r}")
        i = self.m.vcpu_index(vcpu)
        events: list[Event] = []
        while True:
            ev = self.step(i)
            if ev is not None:
                events.append(ev)
            if self._pending is None and ("guest" if self.m.kvm.vcpus[i].running else "host") == where:
                return events
            if len(events) > 500:  # pragma: no cover - a model bug, not a user error
                raise RuntimeError("run_to() did not converge")
