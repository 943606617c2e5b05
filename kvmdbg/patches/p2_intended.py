"""Patch 2/3 as intended: the same e-mail, with ``trap_oslar_el1`` doing what it says.

The cover letter and the handler's own comment describe copying OSLAR_EL1.OSLK
(bit 0) into the stored OSLSR_EL1.OSLK (bit 1). The code as posted swaps the
arguments of ``vcpu_write_sys_reg()`` (see :mod:`kvmdbg.patches.p2`). This patch
is that e-mail with the call in the right order, nothing else: the world switch
of the lock into the hardware, the locked reset (0xA) and the cp14 view are the
posted ones. It is not a kernel anyone ran; it lets a lesson show the design's
own hazards apart from the bug:

* nVHE: a trapped OSLAR write exits the guest (``__sysreg_save_state_nvhe`` saves
  the PE's OSLSR into the vCPU context), the handler updates the stored OSLK, and
  the next entry writes it to the PE: the guest's lock follows its writes, and
  every exit gives the host its own value back.
* VHE: the guest's lock goes onto the PE at vcpu_load and stays with the host
  after vcpu_put (the host's EL1 state is never switched).
* VHE, lost update: while the vCPU is loaded, ``vcpu_write_sys_reg()`` writes
  OSLSR_EL1 to memory only (5.15 ``__vcpu_write_sys_reg_to_cpu()`` in kvm_host.h
  does not list it), the PE keeps the old lock, and ``kvm_vcpu_put_sysregs_vhe()``
  saves the PE's stale OSLSR over the new value: the write is lost at the next put.
"""

from __future__ import annotations

from dataclasses import replace

import kvmdbg.patches.p2 as p2
from kvmdbg.kvm.api import Env
from kvmdbg.kvm.context import Vcpu
from kvmdbg.kvm.definition import Patch
from kvmdbg.kvm.sys_regs import Cp14Desc, Params, SysRegDesc
from kvmdbg.patches.p1 import trap_oslsr_el1_p1
from kvmdbg.patches.registry import register


def trap_oslar_el1(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
    """Patch 2 ``trap_oslar_el1`` as intended: OSLAR.OSLK copied into the stored OSLSR.OSLK."""
    return p2.trap_oslar_el1_as_intended(env, vcpu, p, r)


PATCH: Patch = register(replace(
    p2.PATCH,
    name="p2-intended",
    title=p2.PATCH.title + " (as intended)",
    summary=(
        "Patch 2 with its one bug fixed: a guest OSLAR_EL1 write sets or clears the stored OSLK, "
        "which the world switch then puts into the real OS Lock. This is the design the cover letter "
        "describes, and it shows that design's own hazards: on nVHE the guest's lock follows its "
        "writes and the host gets its value back at every exit; on VHE the host runs with the "
        "guest's lock while the vCPU is loaded and after vcpu_put, and a write made while the vCPU is "
        "loaded is lost at the next vcpu_put, which saves the PE's stale lock over it."
    ),
    requires=("p1",),
    conflicts=("p2",),
    sys_regs=(
        SysRegDesc("OSLAR_EL1", trap_oslar_el1),
        SysRegDesc("OSLSR_EL1", trap_oslsr_el1_p1, reg="OSLSR_EL1", reset="reset_val", val=0xA),
    ),
    cp14=(Cp14Desc("DBGOSLAR", (0, 1, 0, 4), trap_oslar_el1, aarch64="OSLAR_EL1"),),
    notes={**p2.PATCH.notes,
           "trap_oslar_el1": "Patch 2 as intended: copies OSLAR.OSLK into the stored OSLSR.OSLK "
                             "(the posted code swaps vcpu_write_sys_reg()'s arguments)."},
))
