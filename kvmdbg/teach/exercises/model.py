"""The expected answers, each computed from a fresh :class:`~kvmdbg.machine.Machine` when asked.

Nothing here is a stored constant: if the model changes (and its tests agree with the
kernel), the exercises change with it. Each function says which kernel behaviour it asks
about; the facts are in shared/BRIEF.md sections 3-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvmdbg.arch.registers import REGISTERS, lookup, reg_id
from kvmdbg.errors import GuestFault
from kvmdbg.machine import Machine

__all__ = ["oslsr_after_reset", "signature", "vhe_put_oslk", "debugver", "brk_taken", "BRK_PROGRAM",
           "esr_oslar_x1", "migration_errno", "oslsr_write_ec", "read_after_lock", "in_reg_list",
           "ttbr1_after_unlock", "doublelock", "nvhe_exit_oslk", "trapped_msr_ec", "changed_id_errno",
           "mde_while_locked", "set_oslsr_errno", "ttbr1_before", "Access", "RecordingMachine", "run_recorded"]

OSLSR = REGISTERS["OSLSR_EL1"]
DFR0 = REGISTERS["ID_AA64DFR0_EL1"]
MDSCR = REGISTERS["MDSCR_EL1"]


def oslsr_after_reset(variant: str) -> int:
    """What the guest reads from OSLSR_EL1 right after KVM_ARM_VCPU_INIT (reset_vcpu)."""
    m = Machine(variant, trace=False)
    m.reset_vcpu()
    return m.guest_read("OSLSR_EL1")


def signature(variant: str) -> tuple[int, int]:
    """What the trace exercise shows: the guest's OSLSR read after locking, and the PE's OSLK meanwhile."""
    m = Machine(variant, trace=False)
    m.guest_write("OSLAR_EL1", 1)
    seen = m.guest_read("OSLSR_EL1")
    return seen, OSLSR.get(m.physical("OSLSR_EL1"), "OSLK")


def vhe_put_oslk(variant: str) -> int:
    """VHE: the physical OSLK after vcpu_put of a vCPU that only read OSLSR_EL1."""
    m = Machine(variant, vhe=True, trace=False)
    m.guest_read("OSLSR_EL1")  # run the guest once (it comes up with its reset value)
    m.vcpu_put()
    return OSLSR.get(m.physical("OSLSR_EL1"), "OSLK")


def nvhe_exit_oslk(variant: str) -> int:
    """nVHE: the physical OSLK while the host handles an exit (vCPU still loaded, no vcpu_put)."""
    m = Machine(variant, vhe=False, trace=False)
    m.guest_read("OSLSR_EL1")
    m.exit_guest()
    return OSLSR.get(m.physical("OSLSR_EL1"), "OSLK")


def debugver(variant: str) -> int:
    """ID_AA64DFR0_EL1.DebugVer as the guest reads it."""
    return DFR0.get(Machine(variant, trace=False).guest_read("ID_AA64DFR0_EL1"), "DebugVer")


def doublelock(variant: str) -> int:
    """ID_AA64DFR0_EL1.DoubleLock as the guest reads it (0x0 implemented, 0xF not implemented)."""
    return DFR0.get(Machine(variant, trace=False).guest_read("ID_AA64DFR0_EL1"), "DoubleLock")


BRK_PROGRAM = """\
    mov x1, #1
    msr oslar_el1, x1
    isb
    brk #0
"""


def brk_taken(variant: str) -> bool:
    """Is BRK #0 taken after the guest sets its OS Lock? (The v5 selftest's first check.)"""
    from kvmdbg.arch.a64 import assemble

    res = Machine(variant, trace=False).run(assemble(BRK_PROGRAM))
    return any(e.kind == "brk" for e in res.exceptions)


def esr_oslar_x1() -> int:
    """ESR_EL2 for the trapped ``MSR OSLAR_EL1, x1``, taken from the exit a real run records."""
    from kvmdbg.arch.a64 import assemble

    res = Machine("upstream", trace=False).run(assemble("mov x1, #1\nmsr oslar_el1, x1"))
    return next(x.esr for x in res.exits if x.reason == "sysreg")


def trapped_msr_ec(variant: str) -> int:
    """The exception class KVM sees for a trapped ``MSR OSLAR_EL1, x1`` (ESR_EL2.EC)."""
    from kvmdbg.arch.a64 import assemble

    res = Machine(variant, trace=False).run(assemble("mov x1, #1\nmsr oslar_el1, x1"))
    return next((x.esr >> 26) & 0x3F for x in res.exits if x.reason == "sysreg")


def migration_errno(src: str, dst: str) -> int:
    """The errno of restoring ``src``'s ID_AA64DFR0_EL1 on ``dst`` with KVM_SET_ONE_REG (0: accepted)."""
    saved = Machine(src, trace=False).get_one_reg("ID_AA64DFR0_EL1")
    try:
        Machine(dst, trace=False).set_one_reg("ID_AA64DFR0_EL1", saved)
    except OSError as e:
        return int(e.errno or 0)
    return 0


def changed_id_errno(variant: str) -> int:
    """The errno of KVM_SET_ONE_REG of ID_AA64DFR0_EL1 with DebugVer changed (0: accepted)."""
    m = Machine(variant, trace=False)
    value = m.get_one_reg("ID_AA64DFR0_EL1")
    f = DFR0.field("DebugVer")
    new = f.insert(value, 6 if f.extract(value) == 8 else 8)
    try:
        m.set_one_reg("ID_AA64DFR0_EL1", new)
    except OSError as e:
        return int(e.errno or 0)
    return 0


def set_oslsr_errno(variant: str, value: int = 0x0) -> int:
    """The errno of KVM_SET_ONE_REG(OSLSR_EL1, value) (0: accepted)."""
    try:
        Machine(variant, trace=False).set_one_reg("OSLSR_EL1", value)
    except OSError as e:
        return int(e.errno or 0)
    return 0


def oslsr_write_ec(variant: str) -> int | None:
    """The exception class the guest takes for ``MSR OSLSR_EL1`` (None: no exception)."""
    m = Machine(variant, trace=False)
    try:
        m.guest_write("OSLSR_EL1", 0)
    except GuestFault as e:
        return e.ec
    return None


def read_after_lock(variant: str) -> int:
    """The guest writes 1 to OSLAR_EL1, then reads OSLSR_EL1: what does it read?"""
    m = Machine(variant, trace=False)
    m.guest_write("OSLAR_EL1", 1)
    return m.guest_read("OSLSR_EL1")


def in_reg_list(variant: str, reg: str = "OSLSR_EL1") -> bool:
    """Does KVM_GET_REG_LIST list ``reg``?"""
    return reg_id(reg) in Machine(variant, trace=False).get_reg_list()


def ttbr1_after_unlock(variant: str) -> int:
    """The guest writes 0 to OSLAR_EL1 (Linux's clear_os_lock() at boot), then reads TTBR1_EL1."""
    m = Machine(variant, trace=False)
    m.guest_write("OSLAR_EL1", 0)
    return m.guest_read("TTBR1_EL1")


def ttbr1_before(variant: str) -> int:
    """TTBR1_EL1 as a fresh guest reads it, before any OSLAR write."""
    return Machine(variant, trace=False).guest_read("TTBR1_EL1")


def mde_while_locked(variant: str) -> int:
    """The guest sets MDSCR_EL1.KDE|MDE, then its OS Lock: MDE in the PE's MDSCR_EL1 while it runs."""
    m = Machine(variant, trace=False)
    m.guest_write("MDSCR_EL1", MDSCR.field("KDE").mask | MDSCR.field("MDE").mask)
    m.guest_write("OSLAR_EL1", 1)
    assert m.where() == "guest"
    return MDSCR.get(m.physical("MDSCR_EL1"), "MDE")


# -- what a guest program did ---------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """One system-register access a guest program made: ``value`` written, or read into ``rt``."""

    pc: int
    register: str
    is_read: bool
    value: int | None  # the value written (MSR) or read (MRS); None if the access faulted
    rt: int  # the general register of the instruction (31 = xzr)
    faulted: bool = False


class RecordingMachine(Machine):
    """A Machine that logs every guest system-register access a program makes, in order.

    ``Machine.run`` performs each MSR/MRS through ``guest_write``/``guest_read`` after setting
    the vCPU's pc to the instruction, so the instruction word (and its Rt) is known here. The
    log records what the program did, whatever the variant traps or emulates.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accesses: list[Access] = []
        self.program: Any = None

    def _rt(self, vcpu: int) -> tuple[int, int]:
        from kvmdbg.arch.a64 import decode

        pc = self.kvm.vcpus[self.vcpu_index(vcpu)].pc
        prog = self.program
        if prog is None:
            return pc, 0
        k = (pc - prog.base) // 4
        insn = decode(prog.words[k]) if 0 <= k < len(prog.words) else None
        return pc, (insn.rt if insn is not None and insn.rt is not None else 0)

    def guest_write(self, reg: str | int, value: int, vcpu: int = 0) -> None:
        pc, rt = self._rt(vcpu)
        name = lookup(reg).name
        try:
            super().guest_write(reg, value, vcpu)
        except GuestFault:
            self.accesses.append(Access(pc, name, False, value, rt, faulted=True))
            raise
        self.accesses.append(Access(pc, name, False, value, rt))

    def guest_read(self, reg: str | int, vcpu: int = 0) -> int:
        pc, rt = self._rt(vcpu)
        name = lookup(reg).name
        try:
            got = super().guest_read(reg, vcpu)
        except GuestFault:
            self.accesses.append(Access(pc, name, True, None, rt, faulted=True))
            raise
        self.accesses.append(Access(pc, name, True, got, rt))
        return got


def run_recorded(variant: str, source: str, max_steps: int = 10000) -> tuple[Any, list[Access]]:
    """Assemble and run ``source`` on a fresh recording Machine: (RunResult, accesses in order)."""
    from kvmdbg.arch.a64 import assemble

    program = assemble(source)
    m = RecordingMachine(variant, trace=False)
    m.program = program
    res = m.run(program, max_steps=max_steps)
    return res, m.accesses
