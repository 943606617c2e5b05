"""KVM running on one PE: boot, vCPU load/put, the world switch, trap handling.

Every operation is a generator that performs one kernel function at a time
and yields a :class:`Step` naming it, so a caller can stop between any two
functions (``Machine.step()``) or run them all. The sequences follow 5.15:

nVHE entry (``__kvm_vcpu_run``, hyp/nvhe/switch.c): ``__sysreg_save_state_nvhe(host)``,
``__sysreg_restore_state_nvhe(guest)``, ``__activate_traps``,
``__debug_switch_to_guest``, ``__guest_enter``; exit: ``fixup_guest_exit``,
``__sysreg_save_state_nvhe(guest)``, ``__deactivate_traps``,
``__sysreg_restore_state_nvhe(host)``, ``__debug_switch_to_host``. Both
save/restore calls include ``__sysreg_{save,restore}_el1_state``, for the host
*and* the guest context.

VHE (``__kvm_vcpu_run_vhe``, hyp/vhe/switch.c): only the common state
(MDSCR_EL1) and HCR_EL2 move on entry and exit; the guest's EL1 state is
restored once by ``kvm_vcpu_load_sysregs_vhe`` and saved once by
``kvm_vcpu_put_sysregs_vhe``, MDCR_EL2 is switched at the same two points
(``activate_traps_vhe_load``, ``deactivate_traps_vhe_put``), and the host's EL1
state is never saved: the host runs at EL2.

Simplifications, each deliberate: stage 2, timers, the vGIC, FP/SVE, PMU and
pointer authentication are left out (they do not touch the debug state); the
EL1 state the model switches is the handful of registers it has (see
``KvmDefinition.el1_state``); one PE runs everything, so loading a vCPU puts
any other loaded vCPU first, as the scheduler would.
"""

from __future__ import annotations

import errno
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvmdbg.arch.esr import EC, decode_cp14, decode_sysreg, esr
from kvmdbg.arch.registers import REGISTERS, Encoding, lookup_encoding
from kvmdbg.kvm.context import CpuContext, DebugRegs, Vcpu
from kvmdbg.kvm.debug import DEBUG_DIRTY
from kvmdbg.kvm.sys_regs import RESET_UNKNOWN, Params, SysRegDesc

if TYPE_CHECKING:
    from kvmdbg.cpu.pe import PhysicalCPU
    from kvmdbg.kvm.definition import KvmDefinition

__all__ = ["Step", "Kvm", "TrapOutcome", "HCR_GUEST", "HCR_HOST_NVHE", "HCR_HOST_VHE"]

# HCR_EL2 bits the model uses (Arm ARM D13.2.46).
_HCR_VM, _HCR_TID3, _HCR_TSC, _HCR_TGE, _HCR_E2H = 1 << 0, 1 << 18, 1 << 19, 1 << 27, 1 << 34
HCR_GUEST = _HCR_VM | _HCR_TID3 | _HCR_TSC  # HCR_GUEST_FLAGS (the bits modelled)
HCR_HOST_NVHE = 0  # HCR_HOST_NVHE_FLAGS has none of the modelled bits
HCR_HOST_VHE = _HCR_E2H | _HCR_TGE  # HCR_HOST_VHE_FLAGS
HOST_MDCR_EL2 = 0x6  # HPMN: the number of PMU counters (IMPLEMENTATION DEFINED; 6 on Cortex-A57)


@dataclass(frozen=True, slots=True)
class Step:
    """One kernel function (or architectural event) that has just run."""

    function: str
    phase: str
    detail: str = ""
    vcpu: int | None = None


@dataclass(slots=True)
class TrapOutcome:
    """What a trapped access came to: a read value, or an injected UNDEF."""

    value: int | None = None
    undef: bool = False
    explanation: str = ""
    handler: str = ""


Ops = Generator[Step, None, None]


def _encoding(desc: SysRegDesc) -> Encoding:
    enc = REGISTERS[desc.name].encoding
    assert enc is not None
    return enc


class Kvm:
    """KVM at one variant (``defn``) on one PE, with its VM's vCPUs."""

    def __init__(
        self,
        defn: KvmDefinition,
        pe: PhysicalCPU,
        *,
        vhe: bool,
        nr_vcpus: int = 1,
        pmu: bool = True,
        aarch32: frozenset[int] = frozenset(),
    ) -> None:
        self.defn = defn
        self.pe = pe
        self.vhe = vhe
        self.pmu = pmu
        self.host_ctxt = CpuContext({})  # kvm_host_data.host_ctxt
        self.host_debug = DebugRegs()  # kvm_host_data.host_debug_state
        self.host_mdcr_el2 = HOST_MDCR_EL2
        self.vcpus = [Vcpu(i, CpuContext({}), aarch32=i in aarch32) for i in range(nr_vcpus)]
        self.loaded: int | None = None  # which vCPU is loaded on the PE
        self.pending_undef: dict[int, str] = {}
        self._notes: list[str] = []
        self.dry = False  # set while peeking at the guest's view: no side effects

    # -- bookkeeping ------------------------------------------------------------------

    def note(self, text: str) -> None:
        if not self.dry:
            self._notes.append(text)

    def take_notes(self) -> str:
        text = "; ".join(self._notes)
        self._notes.clear()
        return text

    def inject_undefined(self, vcpu: Vcpu, why: str) -> None:
        """``kvm_inject_undefined()``: queue an UNDEF (EC 0x00) for the guest's EL1."""
        if self.dry:
            return
        self.pending_undef[vcpu.index] = why
        self.note(why)

    @property
    def where_host_runs(self) -> int:
        return 2 if self.vhe else 1

    # -- boot and reset --------------------------------------------------------------

    def boot(self) -> Ops:
        """Cold reset, then the host kernel's boot path for this PE."""
        self.pe.cold_reset()
        yield Step("cold reset", "boot", "PE cold reset: the OS Lock comes up locked (OSLSR_EL1.OSLK=1)")
        self.pe.regs["HCR_EL2"] = HCR_HOST_VHE if self.vhe else HCR_HOST_NVHE
        self.pe.regs["MDCR_EL2"] = self.host_mdcr_el2
        self.pe.el = self.where_host_runs
        self.pe.write("OSDLR_EL1", 0)
        self.pe.write("OSLAR_EL1", 0)
        yield Step("clear_os_lock", "boot",
                   "the host kernel writes 0 to OSDLR_EL1 and OSLAR_EL1 on every CPU it brings up")
        for v in self.vcpus:
            yield from self.reset_vcpu(v.index)

    def reset_vcpu(self, index: int) -> Ops:
        """KVM_ARM_VCPU_INIT: ``kvm_reset_vcpu()`` -> ``kvm_reset_sys_regs()``."""
        vcpu = self.vcpus[index]
        was_loaded = vcpu.loaded
        if vcpu.running:
            yield from self.exit_to_userspace(index)
        if was_loaded:
            yield from self.vcpu_put(index)
        # The slots the model has a register for start at 0 (a new vCPU's memory is zeroed;
        # ELR_EL1 and SPSR_EL1 have no reset function in 5.15). Other enum slots come into
        # existence only if something writes them (see patch 2's swapped arguments).
        for slot in self.defn.vcpu_sysreg[1:]:
            if slot in REGISTERS:
                vcpu.ctxt.sys_regs.setdefault(slot, 0)
        for d in self.defn.sys_regs.values():
            if d.reset == "reset_val" and d.reg is not None:
                vcpu.ctxt.sys_regs[d.reg] = d.val
            elif d.reset == "reset_unknown" and d.reg is not None:
                vcpu.ctxt.sys_regs[d.reg] = RESET_UNKNOWN  # reset_unknown(), sys_regs.h
            elif d.debug_kind is not None:
                vcpu.debug.array(d.debug_kind)[d.debug_index] = d.val
        vcpu.flags.clear()
        vcpu.pc, vcpu.pstate_d, vcpu.pstate_ss = 0x80000, True, False
        self.pending_undef.pop(index, None)
        self.defn.setup_mdcr(self, vcpu)  # kvm_arm_vcpu_init_debug()
        oslsr = vcpu.ctxt.sys_regs.get("OSLSR_EL1")
        detail = "reset values from sys_reg_descs[]" + (f"; OSLSR_EL1={oslsr:#x}" if oslsr is not None else
                                                         "; OSLSR_EL1 has no slot (reads are a constant)")
        yield Step("kvm_reset_sys_regs", "reset", detail, index)
        if was_loaded:
            yield from self.vcpu_load(index)

    # -- the EL1 / common state switch (hyp/include/hyp/sysreg-sr.h) ---------------

    def _save_el1(self, ctxt: CpuContext) -> str:
        for name in self.defn.el1_state:
            ctxt.sys_regs[name] = self.pe.regs[name]
        return "; ".join(h.save(self.pe, ctxt) for h in self.defn.el1_hooks)

    def _restore_el1(self, ctxt: CpuContext) -> str:
        for name in self.defn.el1_state:
            self.pe.load(name, ctxt.sys_regs.get(name, 0))
        return "; ".join(h.restore(self.pe, ctxt) for h in self.defn.el1_hooks)

    def _save_common(self, ctxt: CpuContext) -> None:
        for name in self.defn.common_state:
            ctxt.sys_regs[name] = self.pe.regs[name]

    def _restore_common(self, ctxt: CpuContext) -> None:
        for name in self.defn.common_state:
            self.pe.regs[name] = ctxt.sys_regs.get(name, 0)

    # -- vcpu_load / vcpu_put ----------------------------------------------------------

    def vcpu_load(self, index: int) -> Ops:
        vcpu = self.vcpus[index]
        if vcpu.loaded:
            return
        if self.loaded is not None and self.loaded != index:
            yield from self.exit_to_userspace(self.loaded)
            yield from self.vcpu_put(self.loaded)
        vcpu.loaded = True
        self.loaded = index
        yield Step("kvm_arch_vcpu_load", "vcpu_load", f"vCPU {index} is now loaded on this PE", index)
        if self.vhe:
            detail = self._restore_el1(vcpu.ctxt)
            yield Step("__sysreg_restore_el1_state", "vcpu_load",
                       "kvm_vcpu_load_sysregs_vhe: the guest's EL1 state goes onto the PE"
                       + (f"; {detail}" if detail else ""), index)
            # 5.15 VHE switches MDCR_EL2 once per load, not per entry: kvm_vcpu_load_sysregs_vhe()
            # ends with activate_traps_vhe_load() -> __activate_traps_common() (hyp/vhe/switch.c,
            # hyp/include/hyp/switch.h), which saves the host's MDCR_EL2 and writes the vCPU's.
            vcpu.mdcr_el2_host = self.pe.regs["MDCR_EL2"]
            self.pe.regs["MDCR_EL2"] = vcpu.mdcr_el2
            yield Step("activate_traps_vhe_load", "vcpu_load",
                       f"MDCR_EL2={vcpu.mdcr_el2:#x} for the vCPU (host's {vcpu.mdcr_el2_host:#x} kept aside "
                       "until vcpu_put)", index)

    def vcpu_put(self, index: int) -> Ops:
        vcpu = self.vcpus[index]
        if not vcpu.loaded:
            return
        if vcpu.running:
            yield from self.exit_to_userspace(index)
        if self.vhe:
            # kvm_vcpu_put_sysregs_vhe() starts with deactivate_traps_vhe_put() ->
            # __deactivate_traps_common(): the host's MDCR_EL2 comes back (hyp/vhe/switch.c).
            self.pe.regs["MDCR_EL2"] = vcpu.mdcr_el2_host
            yield Step("deactivate_traps_vhe_put", "vcpu_put",
                       f"host MDCR_EL2={vcpu.mdcr_el2_host:#x} back", index)
            detail = self._save_el1(vcpu.ctxt)
            yield Step("__sysreg_save_el1_state", "vcpu_put",
                       "kvm_vcpu_put_sysregs_vhe: the PE's EL1 state is saved into the guest context"
                       + (f"; {detail}" if detail else ""), index)
        vcpu.loaded = False
        self.loaded = None
        yield Step("kvm_arch_vcpu_put", "vcpu_put", f"vCPU {index} is no longer loaded", index)

    # -- entry and exit ------------------------------------------------------------------

    def enter(self, index: int) -> Ops:
        """One trip into the guest from the run loop of ``kvm_arch_vcpu_ioctl_run``."""
        vcpu = self.vcpus[index]
        if vcpu.running:
            return
        if not vcpu.loaded:
            yield from self.vcpu_load(index)
        orig_mdcr_el2 = vcpu.mdcr_el2
        detail = self.defn.setup_debug(self, vcpu)
        if self.vhe and orig_mdcr_el2 != vcpu.mdcr_el2:
            # kvm_arm_setup_debug() (debug.c, 5.15): "mdcr_el2 changes since vcpu_load" are written
            # straight to the PE on VHE, where the vCPU's value is on the PE from load to put.
            self.pe.regs["MDCR_EL2"] = vcpu.mdcr_el2
            detail += "; VHE: the changed MDCR_EL2 is written to the PE now"
        yield Step("kvm_arm_setup_debug", "enter", detail, index)
        pe = self.pe
        if self.vhe:
            self._save_common(self.host_ctxt)
            yield Step("sysreg_save_host_state_vhe", "enter", "host MDSCR_EL1 saved (common state only)", index)
        else:
            detail = self._save_el1(self.host_ctxt)
            self._save_common(self.host_ctxt)
            yield Step("__sysreg_save_state_nvhe", "enter", "host EL1 and common state saved into host_ctxt"
                       + (f"; {detail}" if detail else ""), index)
            detail = self._restore_el1(vcpu.ctxt)
            self._restore_common(vcpu.ctxt)
            yield Step("__sysreg_restore_state_nvhe", "enter", "guest EL1 and common state loaded onto the PE"
                       + (f"; {detail}" if detail else ""), index)
        pe.regs["HCR_EL2"] = HCR_GUEST | (_HCR_E2H if self.vhe else 0)
        if self.vhe:
            # hyp/vhe/switch.c __activate_traps(): HCR_EL2 (and CPACR, VBAR) only; MDCR_EL2
            # was switched at vcpu_load.
            yield Step("__activate_traps", "enter", "HCR_EL2 guest flags (MDCR_EL2 stays as loaded)", index)
        else:
            # hyp/nvhe/switch.c __activate_traps() -> __activate_traps_common(): every entry.
            vcpu.mdcr_el2_host = pe.regs["MDCR_EL2"]
            pe.regs["MDCR_EL2"] = vcpu.mdcr_el2
            yield Step("__activate_traps", "enter", f"MDCR_EL2={vcpu.mdcr_el2:#x}, HCR_EL2 guest flags", index)
        if self.vhe:
            self._restore_common(vcpu.ctxt)
            yield Step("sysreg_restore_guest_state_vhe", "enter", "guest MDSCR_EL1 loaded onto the PE", index)
        if DEBUG_DIRTY in vcpu.flags:
            self._switch_debug_regs(save=self.host_debug, load=vcpu.debug_ptr())
            detail = ("debug state is dirty: host breakpoint/watchpoint registers saved, "
                      + ("the VMM's" if vcpu.use_external_debug else "the guest's") + " loaded")
        else:
            detail = "debug state clean: nothing to switch"
        yield Step("__debug_switch_to_guest", "enter", detail, index)
        pe.el = 1
        pe.pstate_d = vcpu.pstate_d
        vcpu.running = True
        detail = "ERET into the guest at EL1"
        if index in self.pending_undef:
            why = self.pending_undef.pop(index)
            self.take_guest_exception(vcpu, esr(EC.UNKNOWN), why)
            detail += "; the guest takes the pending UNDEF at its EL1 vector"
        yield Step("__guest_enter", "enter", detail, index)

    def exit(self, index: int, esr_el2: int, reason: str) -> Ops:
        """The guest takes an exception to EL2 and KVM goes back to the host."""
        vcpu = self.vcpus[index]
        if not vcpu.running:
            return
        pe = self.pe
        pe.el = 2
        pe.regs["ESR_EL2"] = esr_el2
        vcpu.running = False
        vcpu.pstate_d = pe.pstate_d
        yield Step("__guest_exit", "exit", f"{reason}; ESR_EL2={esr_el2:#010x}", index)
        yield Step("fixup_guest_exit", "exit", "not handled at EL2: back to the host", index)
        if self.vhe:
            self._save_common(vcpu.ctxt)
            yield Step("sysreg_save_guest_state_vhe", "exit", "guest MDSCR_EL1 saved (common state only)", index)
        else:
            detail = self._save_el1(vcpu.ctxt)
            self._save_common(vcpu.ctxt)
            yield Step("__sysreg_save_state_nvhe", "exit", "guest EL1 and common state saved into the vCPU context"
                       + (f"; {detail}" if detail else ""), index)
        pe.regs["HCR_EL2"] = HCR_HOST_VHE if self.vhe else HCR_HOST_NVHE
        if self.vhe:
            yield Step("__deactivate_traps", "exit",
                       "HCR_EL2 host flags (MDCR_EL2 keeps the vCPU's value until vcpu_put)", index)
        else:
            pe.regs["MDCR_EL2"] = vcpu.mdcr_el2_host
            yield Step("__deactivate_traps", "exit", f"host MDCR_EL2={vcpu.mdcr_el2_host:#x} back", index)
        if self.vhe:
            self._restore_common(self.host_ctxt)
            yield Step("sysreg_restore_host_state_vhe", "exit", "host MDSCR_EL1 back on the PE", index)
        else:
            detail = self._restore_el1(self.host_ctxt)
            self._restore_common(self.host_ctxt)
            yield Step("__sysreg_restore_state_nvhe", "exit", "host EL1 and common state back on the PE"
                       + (f"; {detail}" if detail else ""), index)
        if DEBUG_DIRTY in vcpu.flags:
            self._switch_debug_regs(save=vcpu.debug_ptr(), load=self.host_debug)
            vcpu.flags.discard(DEBUG_DIRTY)
            detail = "guest debug registers saved, host's restored; DEBUG_DIRTY cleared"
        else:
            detail = "debug state clean: nothing to switch"
        yield Step("__debug_switch_to_host", "exit", detail, index)
        pe.el = self.where_host_runs
        yield Step("kvm_arm_clear_debug", "exit", self.defn.clear_debug(self, vcpu), index)

    def exit_to_userspace(self, index: int) -> Ops:
        """An exit that the run loop returns to userspace for (KVM_RUN returns)."""
        yield from self.exit(index, esr(EC.UNKNOWN, 0, il=False), "host interrupt; KVM_RUN returns to userspace")

    def _switch_debug_regs(self, save: DebugRegs, load: DebugRegs) -> None:
        pe = self.pe
        for n in pe.breakpoint_slots():
            save.bvr[n], save.bcr[n] = pe.regs[f"DBGBVR{n}_EL1"], pe.regs[f"DBGBCR{n}_EL1"]
            pe.regs[f"DBGBVR{n}_EL1"], pe.regs[f"DBGBCR{n}_EL1"] = load.bvr[n], load.bcr[n]
        for n in pe.watchpoint_slots():
            save.wvr[n], save.wcr[n] = pe.regs[f"DBGWVR{n}_EL1"], pe.regs[f"DBGWCR{n}_EL1"]
            pe.regs[f"DBGWVR{n}_EL1"], pe.regs[f"DBGWCR{n}_EL1"] = load.wvr[n], load.wcr[n]

    # -- the guest's exceptions ----------------------------------------------------------

    def take_guest_exception(self, vcpu: Vcpu, esr_el1: int, why: str, far: int | None = None) -> None:
        """The guest takes an exception at its EL1: the PE's EL1 registers record it."""
        pe = self.pe
        pe.regs["ESR_EL1"] = esr_el1
        pe.regs["ELR_EL1"] = vcpu.pc
        if far is not None:
            pe.regs["FAR_EL1"] = far
        vcpu.last_exception = (esr_el1, why)

    # -- trapped accesses ------------------------------------------------------------------

    def handle_trap(self, index: int, esr_el2: int, regval: int, out: TrapOutcome) -> Ops:
        """``handle_exit`` -> ``kvm_handle_sys_reg`` / ``kvm_handle_cp14_32`` -> the table's handler."""
        vcpu = self.vcpus[index]
        ec = (esr_el2 >> 26) & 0x3F
        if ec == EC.SYS64:
            t = decode_sysreg(esr_el2)
            enc, is_read = t.encoding, t.is_read
            named = lookup_encoding(enc)
            yield Step("handle_exit", "handle", f"EC {ec:#04x} (trapped MSR/MRS): kvm_handle_sys_reg", index)
            desc: SysRegDesc | None = self.defn.sys_regs.get(enc)
            where = (f"Op0={enc.op0} Op1={enc.op1} CRn={enc.crn} CRm={enc.crm} Op2={enc.op2} Rt={t.rt} "
                     f"{'read' if is_read else 'write'} ({named.name if named else enc.generic_name()})")
            yield Step("kvm_handle_sys_reg", "handle", f"esr_sys64_to_params: {where}", index)
            handler = desc.access if desc else None
            label = desc.handler_name if desc else "emulate_sys_reg"
            params_desc = desc
        else:
            c = decode_cp14(esr_el2)
            is_read = c.is_read
            yield Step("handle_exit", "handle", f"EC {ec:#04x} (trapped MCR/MRC p14): kvm_handle_cp14_32", index)
            cdesc = self.defn.cp14.get((c.opc1, c.crn, c.crm, c.opc2))
            yield Step("kvm_handle_cp14_32", "handle",
                       f"Op1={c.opc1} CRn={c.crn} CRm={c.crm} Op2={c.opc2} Rt={c.rt} "
                       f"{'read' if is_read else 'write'} ({cdesc.name if cdesc else 'unknown'})", index)
            handler = cdesc.access if cdesc else None
            label = cdesc.access.__name__ if cdesc else "emulate_cp"
            params_desc = (self.defn.desc(cdesc.aarch64) if cdesc else None)
            if cdesc is not None and params_desc is not None and cdesc.reg != params_desc.reg:
                params_desc = SysRegDesc(params_desc.name, params_desc.access, cdesc.reg, params_desc.reset,
                                         params_desc.val)
            enc = None
        if handler is None or params_desc is None:
            out.undef = True
            out.explanation = "no entry in KVM's table: 'Unsupported guest sys_reg access', UNDEF injected"
            self.inject_undefined(vcpu, out.explanation)
            yield Step("kvm_inject_undefined", "handle", out.explanation, index)
            return
        p = Params(_encoding(params_desc), regval, not is_read)
        done = handler(self, vcpu, p, params_desc)
        out.handler = label
        notes = self.take_notes()
        if is_read and done:
            out.value = p.regval
            detail = f"returns {p.regval:#x}"
        elif done:
            detail = f"write of {regval:#x} handled"
        else:
            detail = "refused the access"
        yield Step(label, "handle", detail + (f"; {notes}" if notes else ""), index)
        if done:
            yield Step("kvm_incr_pc", "handle", "access emulated: skip the instruction", index)
        else:
            out.undef = True
            out.explanation = self.pending_undef.get(index, "the handler refused the access")
            yield Step("kvm_inject_undefined", "handle", out.explanation, index)

    # -- the guest's view, without side effects ---------------------------------------

    def peek_guest_read(self, index: int, desc: SysRegDesc) -> int | None:
        """What a guest MRS of ``desc`` would return now, or None if it would UNDEF."""
        if desc.access is None:
            return None
        vcpu = self.vcpus[index]
        p = Params(_encoding(desc), 0, False)
        self.dry = True
        try:
            ok = desc.access(self, vcpu, p, desc)
        finally:
            self.dry = False
        return p.regval if ok else None

    # -- userspace: KVM_GET_REG_LIST, KVM_GET/SET_ONE_REG ------------------------------

    def reg_list(self) -> list[int]:
        ids = []
        for _enc, d in self.defn.sys_regs.items():
            if not d.listed:
                continue
            ids.append(REGISTERS[d.name].kvm_id)
        return sorted(ids)

    def refuse_one_reg(self, index: int, desc: SysRegDesc | None, value: int | None = None) -> OSError | None:
        """The error KVM_GET_ONE_REG (``value`` None) or KVM_SET_ONE_REG would return, or None.

        Decided before anything changes, as the kernel does: kvm_arm_sys_reg_{get,set}_reg()
        look the id up (index_to_sys_reg_desc(): a descriptor with neither ``reg`` nor
        ``get_user`` counts as absent, then -ENOENT) and only then call ``set_user``.
        ``set_user`` is tried on a scratch copy of the vCPU, so a refusal leaves no trace.
        """
        ioctl = "KVM_GET_ONE_REG" if value is None else "KVM_SET_ONE_REG"
        if desc is None or not desc.listed:
            return OSError(errno.ENOENT, f"No such file or directory ({ioctl}: this variant does not "
                           "expose the register to userspace)")
        if value is not None and desc.set_user is not None:
            rc = desc.set_user(self, self.vcpus[index].copy(), desc, value)
            if rc:
                return OSError(-rc, f"{errno.errorcode.get(-rc, '?')}: KVM_SET_ONE_REG of {desc.name}="
                               f"{value:#x} refused by {desc.set_user.__name__}")
        return None

    def get_one_reg(self, index: int, desc: SysRegDesc | None) -> int:
        refused = self.refuse_one_reg(index, desc)
        if refused is not None:
            raise refused
        assert desc is not None
        vcpu = self.vcpus[index]
        if desc.get_user is not None:
            return desc.get_user(self, vcpu, desc)
        assert desc.reg is not None
        return vcpu.ctxt.sys_regs.get(desc.reg, 0)

    def set_one_reg(self, index: int, desc: SysRegDesc | None, value: int) -> None:
        refused = self.refuse_one_reg(index, desc, value)
        if refused is not None:
            raise refused
        assert desc is not None
        vcpu = self.vcpus[index]
        if desc.set_user is not None:
            rc = desc.set_user(self, vcpu, desc, value)
            assert rc == 0, "refuse_one_reg() let through a value set_user refuses"
            return
        assert desc.reg is not None
        vcpu.ctxt.sys_regs[desc.reg] = value  # reg_from_user(): stored as given, no validation

    def get_core_reg(self, index: int, name: str) -> int:
        """``get_core_reg()`` (guest.c) for ELR_EL1 / SPSR_EL1: their sys_regs[] slot."""
        return self.vcpus[index].ctxt.sys_regs.get(name, 0)

    def set_core_reg(self, index: int, name: str, value: int) -> None:
        """``set_core_reg()`` (guest.c): stored as given (only PSTATE's mode is checked, not these)."""
        self.vcpus[index].ctxt.sys_regs[name] = value

    def iter_vcpus(self) -> Iterator[Vcpu]:
        return iter(self.vcpus)
