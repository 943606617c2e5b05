"""The guest's system-register accesses: MSR/MRS (MCR/MRC p14 on an AArch32 vCPU), and its views.

An access is first checked against the architecture (an encoding with no such accessor is
UNDEFINED at EL1 and never reaches KVM), then against the PE's trap controls (MDCR_EL2,
HCR_EL2): untrapped, the PE answers; trapped, the machine runs the exit, KVM's handler and the
re-entry, one kernel function per event. :meth:`GuestAccess.view` answers "what would the
guest read now?" without side effects, for the trace's guest_view location.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmdbg.arch.esr import EC, esr, esr_cp14, esr_sysreg
from kvmdbg.arch.registers import CP14_REGISTERS, Access, SysReg, check_value, lookup
from kvmdbg.cpu.pe import trap_control
from kvmdbg.errors import ArgumentValueError, GuestFault, RegisterValueError
from kvmdbg.kvm.runtime import HCR_GUEST, Step, TrapOutcome
from kvmdbg.kvm.sys_regs import SysRegDesc

if TYPE_CHECKING:
    from kvmdbg.core import MachineCore

__all__ = ["GuestAccess"]

_SITE_RT = 0  # the general register guest_write/guest_read use (x0 / r0)


class GuestAccess:
    """The guest access path of one machine; ``Machine.guest_read``/``guest_write``/``guest_view`` use it."""

    def __init__(self, machine: MachineCore) -> None:
        self.m = machine
        self._descs: dict[str, SysRegDesc | None] = {}  # register name -> this variant's descriptor
        self._syndromes: dict[tuple[str, bool, bool], int] = {}  # (register, read?, cp14?) -> ESR_EL2 of its trap

    def access(self, reg: str | int, value: int, *, is_read: bool, vcpu: int) -> int | None:
        i = self.m.vcpu_index(vcpu)
        r = lookup(reg)
        if not is_read:
            value = check_value(value, f"value for {r.name}")
        v = self.m.kvm.vcpus[i]
        cp14 = None
        if v.aarch32:
            cp14 = next((c for c in CP14_REGISTERS.values() if c.aarch64 == r.name), None)
            if cp14 is None:
                raise ArgumentValueError(f"vCPU {i} is an AArch32 guest: the model reaches only the cp14 views "
                                  f"{', '.join(CP14_REGISTERS)} from it, not {r.name}")
            if value > 0xFFFFFFFF:
                raise RegisterValueError(f"{value:#x} does not fit the 32-bit register of an AArch32 guest")
        if not v.running:
            self.m.drive(self.m.kvm.enter(i))

        def insn() -> str:  # the instruction as the trace names it (built only for a trace or an error)
            return ((f"MRC p14, {cp14.name}" if cp14 else f"MRS X0, {r.name}") if is_read else
                    (f"MCR p14, {cp14.name} <- {value:#x}" if cp14 else f"MSR {r.name}, X0 ({value:#x})"))

        traced = self.m.trace.enabled
        # The architecture first: an encoding with no such accessor is UNDEFINED at EL1
        # and never reaches KVM (Arm ARM; KVM's v5 1/6 message says the same of OSLSR writes).
        if (is_read and r.access is Access.WO) or (not is_read and r.access is Access.RO) or r.el == 2 \
                or not self.m.pe.has(r.name):
            why = (f"{insn()}: {r.name} is {r.access.value}, so this access is UNDEFINED in the "
                   "architecture; the PE takes the UNDEF at the guest's EL1 without trapping to KVM"
                   if r.el != 2 and self.m.pe.has(r.name) else f"{insn()}: not accessible at EL1 on this PE")
            self.m.kvm.take_guest_exception(v, esr(EC.UNKNOWN), why)
            self.m.record(Step("guest exception", "guest", why, i))
            raise GuestFault(esr(EC.UNKNOWN), why, pc=v.pc)
        trap = self.m.pe.traps_to_el2(r.name)
        if not trap:
            if is_read:
                got = self.m.pe.regs[r.name]
                self.m.record_or_count(traced and Step("guest access", "guest",
                                                      f"{insn()}: not trapped; the PE returns {got:#x}", i))
                return got
            self.m.pe.write(r.name, value)
            self.m.record_or_count(traced and Step("guest access", "guest",
                                                  f"{insn()}: not trapped; written to the PE", i))
            return None
        key = (r.name, is_read, cp14 is not None)
        syndrome = self._syndromes.get(key)
        if syndrome is None:
            if cp14 is not None:
                syndrome = esr_cp14(cp14.opc1, cp14.crn, cp14.crm, cp14.opc2, _SITE_RT, is_read)
            else:
                assert r.encoding is not None
                syndrome = esr_sysreg(r.encoding, _SITE_RT, is_read)
            self._syndromes[key] = syndrome
        self.m.record_or_count(traced and Step("guest access", "guest", f"{insn()}: trapped to EL2 by {trap}", i))
        out = TrapOutcome()
        self.m.drive(self.m.kvm.exit(i, syndrome, f"trapped {'MRC/MCR p14' if cp14 else 'MSR/MRS'}"))
        self.m.drive(self.m.kvm.handle_trap(i, syndrome, value, out))
        self.m.drive(self.m.kvm.enter(i))
        if out.undef:
            self.m.record(Step("guest exception", "guest", f"{insn()}: the guest takes the injected UNDEF", i))
            raise GuestFault(esr(EC.UNKNOWN), f"{insn()}: {out.explanation}", pc=v.pc)
        return out.value

    def view(self, index: int, r: SysReg) -> int | None:
        kvm = self.m.kvm
        v = kvm.vcpus[index]
        if r.access is Access.WO or r.el == 2 or not self.m.pe.has(r.name):
            return None
        # Would the read trap? With the vCPU running, the PE's MDCR_EL2 says; otherwise the
        # value KVM will program at the next entry (vcpu->arch.mdcr_el2).
        trapped = (self.m.pe.traps_to_el2(r.name) if v.running
                   else trap_control(r.name, v.mdcr_el2, HCR_GUEST))
        if trapped:
            if r.name not in self._descs:
                self._descs[r.name] = self.m.defn.desc(r)
            desc = self._descs[r.name]
            if desc is None:
                return None
            if r.name == "MDSCR_EL1" and v.preserved_mdscr is not None:
                return v.preserved_mdscr  # the exit restores the guest's own value before the handler runs
            return kvm.peek_guest_read(index, desc)
        if v.running:
            return self.m.pe.regs[r.name]
        if r.name in v.ctxt.sys_regs:
            return v.ctxt.sys_regs[r.name]
        return self.m.pe.regs[r.name] if v.loaded and self.m.vhe else None  # v.loaded: kvm.loaded == index
