"""The Arm architecture: registers, encodings, syndromes and debug rules.

Nothing here knows about Linux or KVM.
"""

from kvmdbg.arch.debug import DebugKind, Verdict, debug_exception, debug_target_el
from kvmdbg.arch.esr import EC, decode_cp14, decode_sysreg, esr_cp14, esr_sysreg
from kvmdbg.arch.registers import (
    CP14_REGISTERS,
    LSC,
    OSLM,
    REGISTERS,
    Access,
    Cp14Reg,
    DebugVer,
    DoubleLock,
    Encoding,
    Field,
    PMSVer,
    PMUVer,
    SysReg,
    check_value,
    lookup,
    lookup_encoding,
    reg_id,
)

__all__ = [
    "Access", "CP14_REGISTERS", "Cp14Reg", "DebugKind", "DebugVer", "DoubleLock", "EC",
    "Encoding", "Field", "LSC", "OSLM", "PMSVer", "PMUVer", "REGISTERS", "SysReg", "Verdict",
    "check_value", "debug_exception", "debug_target_el", "decode_cp14", "decode_sysreg",
    "esr_cp14", "esr_sysreg", "lookup", "lookup_encoding", "reg_id",
]
