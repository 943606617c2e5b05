"""Single-bit fields of the register table, as masks: one name per bit, defined once.

Every mask here is read from :data:`kvmdbg.arch.registers.REGISTERS`, so the register
table stays the single source of truth for where a bit lives; code that tests or sets a
bit imports its name from here instead of writing ``1 << 15``. Names follow the kernel's
``<REGISTER>_<FIELD>`` style without the exception-level suffix.
"""

from __future__ import annotations

from kvmdbg.arch.registers import REGISTERS


def _bit(register: str, field: str) -> int:
    mask = REGISTERS[register].field(field).mask
    assert mask and mask & (mask - 1) == 0, f"{register}.{field} is not a single bit"
    return mask


OSLAR_OSLK = _bit("OSLAR_EL1", "OSLK")
OSLSR_OSLK = _bit("OSLSR_EL1", "OSLK")
OSDLR_DLK = _bit("OSDLR_EL1", "DLK")
DBGPRCR_CORENPDRQ = _bit("DBGPRCR_EL1", "CORENPDRQ")

MDSCR_SS = _bit("MDSCR_EL1", "SS")
MDSCR_KDE = _bit("MDSCR_EL1", "KDE")
MDSCR_MDE = _bit("MDSCR_EL1", "MDE")

MDCR_TPMCR = _bit("MDCR_EL2", "TPMCR")
MDCR_TPM = _bit("MDCR_EL2", "TPM")
MDCR_TDE = _bit("MDCR_EL2", "TDE")
MDCR_TDA = _bit("MDCR_EL2", "TDA")
MDCR_TDOSA = _bit("MDCR_EL2", "TDOSA")
MDCR_TDRA = _bit("MDCR_EL2", "TDRA")
MDCR_TPMS = _bit("MDCR_EL2", "TPMS")
MDCR_TTRF = _bit("MDCR_EL2", "TTRF")
MDCR_HPMN = REGISTERS["MDCR_EL2"].field("HPMN").mask

HCR_VM = _bit("HCR_EL2", "VM")
HCR_TID3 = _bit("HCR_EL2", "TID3")
HCR_TSC = _bit("HCR_EL2", "TSC")
HCR_TGE = _bit("HCR_EL2", "TGE")
HCR_E2H = _bit("HCR_EL2", "E2H")

__all__ = [n for n in dir() if n.isupper() and n != "REGISTERS"]
