"""What the parts of a :class:`~kvmdbg.Machine` may ask of it: a small protocol, so they import nothing above.

``Machine`` is a thin facade (kvmdbg/machine.py): it validates its arguments, holds the PE,
KVM and the trace, records events, and hands each kind of request to one part:

* :mod:`kvmdbg.recorder`: which watched values each event changed;
* :mod:`kvmdbg.stepper`: world switches advanced one kernel function at a time;
* :mod:`kvmdbg.guest`: the guest's MSR/MRS (MCR/MRC) accesses, trapped or not, and its views;
* :mod:`kvmdbg.userspace`: the KVM ioctls a VMM issues (KVM_GET/SET_ONE_REG and friends).

Each part receives the machine as a :class:`MachineCore` and uses only what is listed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kvmdbg.cpu.pe import PhysicalCPU
    from kvmdbg.kvm.definition import KvmDefinition
    from kvmdbg.kvm.runtime import Kvm, Step
    from kvmdbg.trace import Event, Trace

__all__ = ["MachineCore"]


class MachineCore(Protocol):
    """The machine as its parts see it."""

    kvm: Kvm
    pe: PhysicalCPU
    defn: KvmDefinition
    vhe: bool
    trace: Trace

    def vcpu_index(self, vcpu: int) -> int:
        """``vcpu`` checked against this VM."""

    def record(self, s: Step) -> Event:
        """Record one step as an event."""

    def record_or_count(self, s: Step | bool) -> None:
        """Record ``s``; untraced (``s`` is False: the caller built no Step), only count the step."""

    def drive(self, ops: Iterable[Step]) -> list[Event]:
        """Run a kernel operation to its end, recording each step."""
