"""Exception syndromes (ESR_ELx) for the exception classes the kit meets.

Layouts from the Arm ARM, D17.2.37 "ESR_EL2" (ISS encodings for EC 0x18 and
EC 0x05). Building and decoding live side by side so a round trip is a test.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kvmdbg.arch.registers import Encoding

__all__ = ["EC", "SysRegTrap", "Cp14Trap", "esr_sysreg", "decode_sysreg", "esr_cp14", "decode_cp14", "esr"]

IL = 1 << 25  # instruction length: 32-bit instruction


class EC(enum.IntEnum):
    """ESR_ELx.EC values (Arm ARM, D17.2.37)."""

    UNKNOWN = 0x00  # what an UNDEF looks like to the guest
    CP14_MR = 0x05  # trapped MCR/MRC p14
    SVC64 = 0x15
    HVC64 = 0x16
    SYS64 = 0x18  # trapped MSR/MRS/system instruction
    BREAKPOINT_LOW = 0x30
    BREAKPOINT_CUR = 0x31
    SOFTSTP_LOW = 0x32
    SOFTSTP_CUR = 0x33
    WATCHPT_LOW = 0x34
    WATCHPT_CUR = 0x35
    BRK64 = 0x3C


def esr(ec: int, iss: int = 0, il: bool = True) -> int:
    return (ec << 26) | (IL if il else 0) | (iss & 0x1FFFFFF)


@dataclass(frozen=True, slots=True)
class SysRegTrap:
    """A decoded EC 0x18 syndrome: the kernel's ``struct sys_reg_params`` shape."""

    encoding: Encoding
    rt: int
    is_read: bool


def esr_sysreg(enc: Encoding, rt: int, is_read: bool) -> int:
    """ESR_EL2 for a trapped ``MSR``/``MRS`` of ``enc`` with general register ``rt``."""
    iss = (
        enc.op0 << 20
        | enc.op2 << 17
        | enc.op1 << 14
        | enc.crn << 10
        | rt << 5
        | enc.crm << 1
        | int(is_read)
    )
    return esr(EC.SYS64, iss)


def decode_sysreg(value: int) -> SysRegTrap:
    """Decode an EC 0x18 ESR as ``kvm_handle_sys_reg`` does (esr_sys64_to_params)."""
    if (value >> 26) & 0x3F != EC.SYS64:
        raise ValueError(f"ESR {value:#x} is not a trapped MSR/MRS (EC 0x18)")
    enc = Encoding(
        (value >> 20) & 0x3,
        (value >> 14) & 0x7,
        (value >> 10) & 0xF,
        (value >> 1) & 0xF,
        (value >> 17) & 0x7,
    )
    return SysRegTrap(enc, (value >> 5) & 0x1F, bool(value & 1))


@dataclass(frozen=True, slots=True)
class Cp14Trap:
    """A decoded EC 0x05 syndrome (trapped MCR/MRC p14)."""

    opc1: int
    crn: int
    crm: int
    opc2: int
    rt: int
    is_read: bool


def esr_cp14(opc1: int, crn: int, crm: int, opc2: int, rt: int, is_read: bool, cond: int = 0xE) -> int:
    """ESR_EL2 for a trapped AArch32 MCR/MRC p14 (CV=1, COND as given)."""
    iss = (
        1 << 24
        | cond << 20
        | opc2 << 17
        | opc1 << 14
        | crn << 10
        | rt << 5
        | crm << 1
        | int(is_read)
    )
    return esr(EC.CP14_MR, iss)


def decode_cp14(value: int) -> Cp14Trap:
    if (value >> 26) & 0x3F != EC.CP14_MR:
        raise ValueError(f"ESR {value:#x} is not a trapped MCR/MRC p14 (EC 0x05)")
    return Cp14Trap(
        (value >> 14) & 0x7,
        (value >> 10) & 0xF,
        (value >> 1) & 0xF,
        (value >> 17) & 0x7,
        (value >> 5) & 0x1F,
        bool(value & 1),
    )
