"""What a KVM handler may use: the narrow interface between the model's engine and its tables.

The kernel's handlers receive a ``struct kvm_vcpu`` and reach the rest of KVM through a
handful of helpers (``vcpu_read_sys_reg()``, ``kvm_inject_undefined()``, ``read_id_reg()``,
``read_sysreg_s()`` ...). The model's handlers do the same: they receive a :class:`Vcpu`
and an :class:`Env`, the part of the engine (:class:`kvmdbg.kvm.runtime.Kvm`) a handler is
allowed to touch. Nothing here knows which variant runs, and nothing here imports the
engine, so the tables (``sys_regs.py``, ``debug.py``, ``definition.py``, the patches) sit
below the engine with no import cycle.

``Env`` is a :class:`typing.Protocol`: the engine implements it, and so does the dry
environment that answers "what would the guest read now?" without side effects.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from kvmdbg.arch.registers import Encoding
from kvmdbg.kvm.context import Vcpu

__all__ = ["Env", "Params", "IdReader", "DebugHook", "MdcrHook",
           "kernel_name", "models"]


@dataclass(slots=True)
class Params:
    """``struct sys_reg_params``: one decoded access."""

    encoding: Encoding
    regval: int
    is_write: bool


class Env(Protocol):
    """The engine as a handler sees it."""

    @property
    def vhe(self) -> bool:
        """True on a VHE host (the host kernel runs at EL2)."""
        ...

    @property
    def pmu(self) -> bool:
        """True if the vCPUs were created with a PMU (KVM_ARM_VCPU_PMU_V3)."""
        ...

    @property
    def host_mdcr_el2(self) -> int:
        """The MDCR_EL2 the host runs with (its HPMN field is kept for the guest)."""
        ...

    @property
    def layout(self) -> tuple[str, ...]:
        """``enum vcpu_sysreg`` of this variant: index -> slot name."""
        ...

    @property
    def vm(self) -> MutableMapping[str, int]:
        """Per-VM state (``struct kvm_arch``) that a variant adds, by name."""
        ...

    def note(self, text: str) -> None:
        """Add a sentence to the current step's detail (dropped in a dry run)."""

    def inject_undefined(self, vcpu: Vcpu, why: str) -> None:
        """``kvm_inject_undefined()``: queue an UNDEF for the guest (dropped in a dry run)."""

    def cpu_has(self, name: str) -> bool:
        """True if the PE implements register ``name``."""
        ...

    def cpu_read(self, name: str) -> int:
        """``read_sysreg_s()``: the PE's current value of ``name``."""
        ...

    def cpu_write(self, name: str, value: int) -> None:
        """``write_sysreg_s()``: load ``value`` into the PE (only implemented bits stick)."""

    def cpu_id_reg(self, name: str) -> int:
        """The PE's own value of an ID register, as the host's cpufeature code reads it."""
        ...

    def id_reg(self, vcpu: Vcpu, name: str) -> int:
        """``read_id_reg()``: the value KVM reports to this guest for an ID register."""
        ...

    def setup_mdcr(self, vcpu: Vcpu) -> None:
        """``kvm_arm_setup_mdcr_el2()`` of this variant: compute ``vcpu.mdcr_el2``."""


IdReader = Callable[[Env, Vcpu, str], int]
DebugHook = Callable[[Env, Vcpu], str]
MdcrHook = Callable[[Env, Vcpu], None]
F = TypeVar("F", bound=Callable[..., object])


def models(kernel: str) -> Callable[[F], F]:
    """Mark a Python function as the model of the kernel function ``kernel``.

    Several Python functions model one kernel function at different variants
    (``trap_oslsr_el1`` in 5.15, after patch 1, in 5.18); the trace, ``diff()`` and the
    lab show the kernel's name, which this records, and never the Python one.
    """

    def mark(fn: F) -> F:
        fn.__dict__["kernel_name"] = kernel
        return fn

    return mark


def kernel_name(fn: object) -> str:
    """The kernel function ``fn`` models: its :func:`models` name, else its own name."""
    name = getattr(fn, "kernel_name", None)
    if isinstance(name, str):
        return name
    own = getattr(fn, "__name__", None)
    return own if isinstance(own, str) else repr(fn)
