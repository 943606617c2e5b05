"""Patch 2/3: "KVM: arm64: Allow the guest to change the OS Lock status" (v1).

Three changes, all modelled here:

* ``__sysreg_save_el1_state`` saves the PE's OSLSR_EL1 into the context being
  saved, and ``__sysreg_restore_el1_state`` writes that context's OSLK to the
  PE's OSLAR_EL1 (hyp/include/hyp/sysreg-sr.h). Where those two run decides
  everything: for host *and* guest on every nVHE entry/exit, but only for the
  guest, at vcpu_load/vcpu_put, on VHE.
* The reset value of OSLSR_EL1 becomes 0xA: a vCPU comes out of reset locked.
* A new ``trap_oslar_el1`` handles guest OSLAR_EL1 writes (and the cp14
  DBGOSLAR view); reads return 0.

About ``trap_oslar_el1`` as posted: it calls
``vcpu_write_sys_reg(vcpu, OSLSR_EL1, oslsr | ((p->regval & 1) << 1))``, but the
5.15 prototype is ``vcpu_write_sys_reg(vcpu, u64 val, int reg)``. C converts
both arguments silently, so the call stores the *enum index* of OSLSR_EL1
(26 with patch 1 applied) into the ``sys_regs[]`` slot whose index is the
intended new OSLSR value: 8 (TTBR1_EL1) for an unlock, 10 (ESR_EL1) for a
lock, given an OSLSR of 0x8 or 0xA. The stored OSLSR_EL1 itself does not
change, unless userspace planted an OSLSR value (KVM_SET_ONE_REG, unchecked since
patch 1) whose index is OSLSR_EL1's own (0x18 or 0x1A): then it becomes 26. An
index past the end of ``sys_regs[]`` is an out-of-bounds store in the kernel;
the model reports it and changes nothing. We model the code as posted, because that is what a kernel built
at this variant runs; ``trap_oslar_el1_as_intended`` below is the reading
the cover letter describes; the variant ``p2-intended``
(kvmdbg/patches/p2_intended.py) runs it.
"""

from __future__ import annotations

from kvmdbg.arch.bits import OSLAR_OSLK, OSLSR_OSLK
from kvmdbg.cpu.pe import PhysicalCPU
from kvmdbg.kvm.api import Env, models
from kvmdbg.kvm.context import CpuContext, Vcpu
from kvmdbg.kvm.definition import El1Hook, Patch
from kvmdbg.kvm.sys_regs import Cp14Desc, Params, SysRegDesc, read_zero, vcpu_read_sys_reg, vcpu_write_sys_reg
from kvmdbg.patches.p1 import trap_oslsr_el1_p1
from kvmdbg.patches.registry import register


@models("trap_oslar_el1")
def trap_oslar_el1_p2(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """Patch 2 ``trap_oslar_el1``, as posted: reads RAZ; a write goes through swapped arguments."""
    if not p.is_write:
        return read_zero(env, vcpu, p)
    oslsr = vcpu_read_sys_reg(env, vcpu, "OSLSR_EL1") & ~OSLSR_OSLK  # "preserve all but the OSLK bit"
    # vcpu_write_sys_reg(vcpu, OSLSR_EL1, oslsr | (OSLAR.OSLK moved to OSLSR.OSLK)): value and index swapped.
    index = oslsr | (OSLSR_OSLK if p.regval & OSLAR_OSLK else 0)
    value = env.layout.index("OSLSR_EL1")
    env.note(swapped_write_note(env.layout, index, value))
    vcpu_write_sys_reg(env, vcpu, value, index)
    return True


def swapped_write_note(layout: tuple[str, ...], index: int, value: int) -> str:
    """What ``vcpu_write_sys_reg(vcpu, OSLSR_EL1, index)`` does, in words, for the enum ``layout``."""
    call = f"vcpu_write_sys_reg(vcpu, OSLSR_EL1, {index:#x}): the arguments are swapped, so"
    if index >= len(layout):
        return (f"{call} it stores {value} ({value:#x}) into sys_regs[{index}], past the end of the "
                f"array ({len(layout)} entries)")
    slot = layout[index]
    if slot == "OSLSR_EL1":
        return (f"{call} it stores {value} ({value:#x}) into sys_regs[{index}], which happens to be "
                f"OSLSR_EL1 itself: the stored OSLSR becomes {value:#x}")
    if index == 0:
        return (f"{call} it stores {value} ({value:#x}) into sys_regs[0] (__INVALID_SYSREG__, a slot "
                "no register uses); OSLSR_EL1 is unchanged")
    return (f"{call} it stores {value} ({value:#x}) into sys_regs[{index}] ({slot}); OSLSR_EL1 is "
            "unchanged")


def trap_oslar_el1_as_intended(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """What the cover letter describes: copy OSLAR.OSLK (bit 0) into the stored OSLSR.OSLK (bit 1)."""
    if not p.is_write:
        return read_zero(env, vcpu, p)
    oslsr = vcpu_read_sys_reg(env, vcpu, "OSLSR_EL1") & ~OSLSR_OSLK
    vcpu_write_sys_reg(env, vcpu, oslsr | (OSLSR_OSLK if p.regval & OSLAR_OSLK else 0), "OSLSR_EL1")
    return True


def _save_oslsr(pe: PhysicalCPU, ctxt: CpuContext) -> str:
    ctxt.sys_regs["OSLSR_EL1"] = pe.regs["OSLSR_EL1"]
    return f"patch 2: OSLSR_EL1={pe.regs['OSLSR_EL1']:#x} read from the PE into the context"


def _restore_oslk(pe: PhysicalCPU, ctxt: CpuContext) -> str:
    oslk = 1 if ctxt.sys_regs.get("OSLSR_EL1", 0) & OSLSR_OSLK else 0
    pe.write("OSLAR_EL1", oslk)
    return f"patch 2: OSLAR_EL1 <- {oslk} (the context's OSLK), so the PE's OS Lock is now {oslk}"


OSLSR_SWITCH = El1Hook("OSLSR_EL1 saved from, and OSLK written back to, the real OS Lock", "OSLSR_EL1",
                       _save_oslsr, _restore_oslk)

PATCH = register(Patch(
    name="p2",
    title="KVM: arm64: Allow the guest to change the OS Lock status",
    summary=(
        "Makes the OS Lock real for the guest by putting the guest's OSLK into the hardware: the EL1 "
        "save/restore code now reads OSLSR_EL1 from the PE and writes the context's OSLK back through "
        "OSLAR_EL1, a vCPU resets locked (0xA), and guest OSLAR_EL1 writes are meant to update the "
        "stored OSLK. The hardware lock is a property of the whole PE, and where the switch runs "
        "decides who else it binds: on nVHE the PE carries the guest's lock only while the guest "
        "runs, and every exit puts the host's value back; on VHE the guest's lock goes onto the PE at "
        "vcpu_load, so the host (KVM's own exit handling included) runs with it while the vCPU is "
        "loaded and keeps it after vcpu_put, because the host's EL1 state is never switched. As "
        "posted, the new OSLAR handler passes its arguments to vcpu_write_sys_reg() in the wrong "
        "order, so the stored OSLK does not change on a guest write."
    ),
    message_id="<20211029003202.158161-3-oupton@google.com>",
    files=("arch/arm64/kvm/hyp/include/hyp/sysreg-sr.h", "arch/arm64/kvm/sys_regs.c"),
    requires=("p1",),
    sys_regs=(
        SysRegDesc("OSLAR_EL1", trap_oslar_el1_p2),
        SysRegDesc("OSLSR_EL1", trap_oslsr_el1_p1, reg="OSLSR_EL1", reset="reset_val", val=0xA),
    ),
    cp14=(Cp14Desc("DBGOSLAR", (0, 1, 0, 4), trap_oslar_el1_p2, aarch64="OSLAR_EL1"),),
    el1_hooks=(OSLSR_SWITCH,),
    notes={
        "__sysreg_save_el1_state": "Patch 2: also saves the PE's OSLSR_EL1 into the context.",
        "__sysreg_restore_el1_state": "Patch 2: also writes the context's OSLK to the PE's OSLAR_EL1.",
        "__sysreg_save_state_nvhe": "Patch 2: includes the OSLSR_EL1 save (host and guest, every run).",
        "__sysreg_restore_state_nvhe": "Patch 2: includes the OSLAR_EL1 write (host and guest, every run).",
        "trap_oslar_el1": "Patch 2: new handler; as posted its vcpu_write_sys_reg() arguments are swapped.",
        "kvm_reset_sys_regs": "Patch 2: OSLSR_EL1 resets to 0xA (locked).",
    },
    date="2021-10-29",
))
