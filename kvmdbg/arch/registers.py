"""The Arm system registers kvmdbg models, declared as data.

One line per register and one line per field, in the spirit of Linux's
``arch/arm64/tools/sysreg`` and m1n1's ``sysreg.py``. Names are the Arm
Architecture Reference Manual's (DDI 0487), so every name here can be found
there and in the kernel.

Fields may be split across non-adjacent bits: OSLSR_EL1.OSLM is bit 3
(OSLM[1]) and bit 0 (OSLM[0]), which is why a :class:`Field` lists its bit
positions instead of an lsb and a width.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from kvmdbg.errors import RegisterTypeError, RegisterValueError, UnknownRegisterError

__all__ = [
    "Access",
    "Encoding",
    "Field",
    "SysReg",
    "Cp14Reg",
    "OSLM",
    "DebugVer",
    "PMUVer",
    "PMSVer",
    "DoubleLock",
    "LSC",
    "REGISTERS",
    "CP14_REGISTERS",
    "lookup",
    "lookup_encoding",
    "reg_id",
    "check_value",
    "MASK64",
]

MASK64 = (1 << 64) - 1

# KVM's userspace register id for an arm64 system register:
# KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG (uapi/asm/kvm.h).
KVM_REG_ARM64_SYSREG_BASE = 0x6030000000130000


class Access(enum.Enum):
    RW = "read/write"
    RO = "read-only"
    WO = "write-only"


# --- Field value enums (names from the Arm ARM) ---------------------------


class OSLM(enum.IntEnum):
    """OSLSR_EL1.OSLM, the OS Lock model."""

    NOT_IMPLEMENTED = 0b00
    IMPLEMENTED = 0b10  # the AArch64 form; the only one Armv8 permits


class DebugVer(enum.IntEnum):
    """ID_AA64DFR0_EL1.DebugVer."""

    V8 = 0x6
    V8_VHE = 0x7
    V8_2 = 0x8
    V8_4 = 0x9
    V8_8 = 0xA


class PMUVer(enum.IntEnum):
    """ID_AA64DFR0_EL1.PMUVer."""

    NI = 0x0
    V3 = 0x1
    V3P1 = 0x4
    V3P4 = 0x5
    V3P5 = 0x6
    IMP_DEF = 0xF


class PMSVer(enum.IntEnum):
    """ID_AA64DFR0_EL1.PMSVer (Statistical Profiling)."""

    NI = 0x0
    IMP = 0x1


class DoubleLock(enum.IntEnum):
    """ID_AA64DFR0_EL1.DoubleLock: 0 means *implemented*, 0xF means not."""

    IMPLEMENTED = 0x0
    NOT_IMPLEMENTED = 0xF


class LSC(enum.IntEnum):
    """DBGWCRn_EL1.LSC: which accesses a watchpoint matches."""

    NONE = 0b00
    LOAD = 0b01
    STORE = 0b10
    ANY = 0b11


# --- Declarations ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Encoding:
    """An AArch64 system register encoding (op0, op1, CRn, CRm, op2)."""

    op0: int
    op1: int
    crn: int
    crm: int
    op2: int

    @property
    def sys_reg(self) -> int:
        """The ``sys_reg()`` value of the kernel: bits 20:5 of MSR/MRS."""
        return self.op0 << 19 | self.op1 << 16 | self.crn << 12 | self.crm << 8 | self.op2 << 5

    @property
    def kvm_id(self) -> int:
        """The 64-bit id userspace passes to KVM_GET/SET_ONE_REG."""
        return (
            KVM_REG_ARM64_SYSREG_BASE
            | self.op0 << 14
            | self.op1 << 11
            | self.crn << 7
            | self.crm << 3
            | self.op2
        )

    @classmethod
    def from_kvm_id(cls, reg_id: int) -> Encoding:
        if reg_id & ~0xFFFF != KVM_REG_ARM64_SYSREG_BASE:
            raise ValueError(f"{reg_id:#x} is not a KVM arm64 system register id")
        return cls(
            (reg_id >> 14) & 0x3,
            (reg_id >> 11) & 0x7,
            (reg_id >> 7) & 0xF,
            (reg_id >> 3) & 0xF,
            reg_id & 0x7,
        )

    def generic_name(self) -> str:
        """The assembler's generic spelling, ``s<op0>_<op1>_c<n>_c<m>_<op2>``."""
        return f"s{self.op0}_{self.op1}_c{self.crn}_c{self.crm}_{self.op2}"

    def __str__(self) -> str:
        return f"({self.op0}, {self.op1}, {self.crn}, {self.crm}, {self.op2})"


@dataclass(frozen=True, slots=True)
class Field:
    """A named field; ``bits`` are register bit positions, field bit 0 first."""

    name: str
    bits: tuple[int, ...]
    enum: type[enum.IntEnum] | None = None
    doc: str = ""

    @property
    def lsb(self) -> int:
        return min(self.bits)

    @property
    def msb(self) -> int:
        return max(self.bits)

    @property
    def width(self) -> int:
        return len(self.bits)

    @property
    def mask(self) -> int:
        m = 0
        for b in self.bits:
            m |= 1 << b
        return m

    @property
    def contiguous(self) -> bool:
        return self.bits == tuple(range(self.lsb, self.lsb + self.width))

    def extract(self, value: int) -> int:
        if self.contiguous:
            return (value >> self.lsb) & ((1 << self.width) - 1)
        out = 0
        for i, b in enumerate(self.bits):
            out |= ((value >> b) & 1) << i
        return out

    def insert(self, value: int, field_value: int) -> int:
        if not 0 <= int(field_value) < (1 << self.width):
            raise RegisterValueError(
                f"{int(field_value):#x} does not fit in field {self.name} "
                f"({self.width} bit{'s' if self.width > 1 else ''}); use a value "
                f"from 0 to {(1 << self.width) - 1:#x}"
            )
        value &= ~self.mask
        for i, b in enumerate(self.bits):
            value |= ((int(field_value) >> i) & 1) << b
        return value

    def describe(self, field_value: int) -> str:
        if self.enum is not None:
            try:
                return self.enum(field_value).name
            except ValueError:
                pass
        return hex(field_value) if self.width > 1 else str(field_value)


def _f(name: str, msb: int, lsb: int | None = None, enum: type[enum.IntEnum] | None = None, doc: str = "") -> Field:
    lsb = msb if lsb is None else lsb
    return Field(name, tuple(range(lsb, msb + 1)), enum, doc)


@dataclass(frozen=True)
class SysReg:
    """One system register: name, encoding, fields, access and reset value.

    ``reset`` is the value after a cold reset of the PE for the bits the
    model tracks (``None`` when the architecture leaves it UNKNOWN).
    """

    name: str
    encoding: Encoding | None
    fields: tuple[Field, ...]
    access: Access = Access.RW
    reset: int | None = 0
    el: int = 1
    doc: str = ""
    aarch32: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({f.name: f for f in self.fields}))

    def field(self, name: str) -> Field:
        try:
            by_name: Mapping[str, Field] = getattr(self, "_by_name")  # noqa: B009 - set in __post_init__
            return by_name[name]
        except KeyError:
            raise KeyError(
                f"{self.name} has no field {name!r}; its fields are "
                f"{', '.join(f.name for f in self.fields)}"
            ) from None

    def get(self, value: int, name: str) -> int:
        return self.field(name).extract(value)

    def set(self, value: int, name: str, field_value: int) -> int:
        return self.field(name).insert(value, field_value)

    def decode(self, value: int) -> dict[str, int]:
        """Field name to field value (enum members where the field has an enum)."""
        out: dict[str, int] = {}
        for f in self.fields:
            v = f.extract(value)
            if f.enum is not None:
                try:
                    v = f.enum(v)
                except ValueError:
                    pass
            out[f.name] = v
        return out

    def encode(self, **fields: int) -> int:
        value = 0
        for name, v in fields.items():
            value = self.field(name).insert(value, v)
        return value

    def describe(self, value: int) -> str:
        parts = [f"{f.name}={f.describe(f.extract(value))}" for f in self.fields]
        return f"{self.name}={value:#x} ({', '.join(parts)})"

    @property
    def kvm_id(self) -> int:
        if self.encoding is None:
            raise ValueError(f"{self.name} has no system register encoding")
        return self.encoding.kvm_id


@dataclass(frozen=True, slots=True)
class Cp14Reg:
    """An AArch32 debug register reached with MCR/MRC p14 (opc1, CRn, CRm, opc2)."""

    name: str
    opc1: int
    crn: int
    crm: int
    opc2: int
    aarch64: str
    access: Access = Access.RW


def _reg(
    name: str,
    enc: tuple[int, int, int, int, int] | None,
    fields: Iterable[Field] = (),
    access: Access = Access.RW,
    reset: int | None = 0,
    el: int = 1,
    doc: str = "",
    aarch32: str | None = None,
) -> SysReg:
    return SysReg(name, Encoding(*enc) if enc else None, tuple(fields), access, reset, el, doc, aarch32)


_BCR_FIELDS = (
    _f("E", 0, doc="breakpoint enabled"),
    _f("PMC", 2, 1, doc="privilege mode control: 0b01 EL1, 0b10 EL0, 0b11 EL1 and EL0"),
    _f("BAS", 8, 5, doc="byte address select; 0b1111 for an A64 instruction"),
    _f("HMC", 13),
    _f("SSC", 15, 14),
    _f("LBN", 19, 16),
    _f("BT", 23, 20, doc="breakpoint type; 0b0000 unlinked instruction address match"),
)
_WCR_FIELDS = (
    _f("E", 0, doc="watchpoint enabled"),
    _f("PAC", 2, 1, doc="privilege of access control: 0b01 EL1, 0b10 EL0, 0b11 both"),
    _f("LSC", 4, 3, LSC, doc="load/store control"),
    _f("BAS", 12, 5, doc="byte address select within the doubleword"),
    _f("HMC", 13),
    _f("SSC", 15, 14),
    _f("LBN", 19, 16),
    _f("WT", 20),
    _f("MASK", 28, 24),
)

_DECLS: list[SysReg] = [
    _reg(
        "OSLAR_EL1", (2, 0, 1, 0, 4), (_f("OSLK", 0, doc="write 1 to lock, 0 to unlock"),),
        Access.WO, reset=None, aarch32="DBGOSLAR",
        doc="OS Lock Access Register: writing OSLK sets or clears the OS Lock.",
    ),
    _reg(
        "OSLSR_EL1", (2, 0, 1, 1, 4),
        (
            Field("OSLM", (0, 3), OSLM, "OS Lock model, split over bits 3 and 0"),
            _f("OSLK", 1, doc="OS Lock status: 1 = locked"),
            _f("nTT", 2, doc="not 32-bit access; RAZ"),
        ),
        Access.RO, reset=0xA, aarch32="DBGOSLSR",
        doc="OS Lock Status Register. OSLK is 1 after a cold reset.",
    ),
    _reg(
        "OSDLR_EL1", (2, 0, 1, 3, 4), (_f("DLK", 0, doc="OS Double Lock"),),
        reset=0, aarch32="DBGOSDLR",
        doc="OS Double Lock Register; exists only with FEAT_DoubleLock.",
    ),
    _reg(
        "DBGPRCR_EL1", (2, 0, 1, 4, 4), (_f("CORENPDRQ", 0, doc="core no powerdown request"),),
        reset=0, aarch32="DBGPRCR",
        doc="Debug Power Control Register.",
    ),
    _reg(
        "MDRAR_EL1", (2, 0, 1, 0, 0), (_f("Valid", 1, 0), _f("ROMADDR", 47, 12)),
        Access.RO, reset=0, doc="Debug ROM Address Register.",
    ),
    _reg(
        "MDSCR_EL1", (2, 0, 0, 2, 2),
        (
            _f("SS", 0, doc="software step enable"),
            _f("ERR", 6),
            _f("TDCC", 12, doc="trap DCC accesses from EL0"),
            _f("KDE", 13, doc="debug exceptions enabled at the same EL (local debug)"),
            _f("HDE", 14, doc="halting debug enable"),
            _f("MDE", 15, doc="monitor debug events: breakpoints and watchpoints"),
            _f("TXfull", 29),
            _f("RXfull", 30),
        ),
        reset=None, doc="Monitor Debug System Control Register.",
    ),
    _reg(
        "ID_AA64DFR0_EL1", (3, 0, 0, 5, 0),
        (
            _f("DebugVer", 3, 0, DebugVer),
            _f("TraceVer", 7, 4),
            _f("PMUVer", 11, 8, PMUVer),
            _f("BRPs", 15, 12, doc="breakpoints, minus one"),
            _f("WRPs", 23, 20, doc="watchpoints, minus one"),
            _f("CTX_CMPs", 31, 28, doc="context-aware breakpoints, minus one"),
            _f("PMSVer", 35, 32, PMSVer),
            _f("DoubleLock", 39, 36, DoubleLock),
            _f("TraceFilt", 43, 40),
        ),
        Access.RO, reset=None, doc="AArch64 Debug Feature Register 0.",
    ),
    _reg(
        "MDCR_EL2", (3, 4, 1, 1, 1),
        (
            _f("HPMN", 4, 0),
            _f("TPMCR", 5),
            _f("TPM", 6),
            _f("HPME", 7),
            _f("TDE", 8, doc="route debug exceptions to EL2"),
            _f("TDA", 9, doc="trap debug register accesses to EL2"),
            _f("TDOSA", 10, doc="trap OS-related debug registers (OSLAR, OSLSR, OSDLR, DBGPRCR)"),
            _f("TDRA", 11, doc="trap debug ROM address register accesses"),
            _f("E2PB", 13, 12),
            _f("TPMS", 14),
            _f("TTRF", 19),
        ),
        reset=None, el=2, doc="Monitor Debug Configuration Register (EL2).",
    ),
    _reg(
        "HCR_EL2", (3, 4, 1, 1, 0),
        (
            _f("VM", 0),
            _f("TID3", 18, doc="trap ID group 3 registers (ID_AA64DFR0_EL1 among them)"),
            _f("TSC", 19),
            _f("TGE", 27, doc="trap general exceptions to EL2"),
            _f("E2H", 34, doc="EL2 host: set on a VHE host"),
        ),
        reset=None, el=2, doc="Hypervisor Configuration Register (only the bits the model uses).",
    ),
    _reg("ESR_EL1", (3, 0, 5, 2, 0), (_f("ISS", 24, 0), _f("IL", 25), _f("EC", 31, 26)), reset=None),
    _reg("ESR_EL2", (3, 4, 5, 2, 0), (_f("ISS", 24, 0), _f("IL", 25), _f("EC", 31, 26)), reset=None, el=2),
    _reg("ELR_EL1", (3, 0, 4, 0, 1), (), reset=None),
    _reg("TTBR1_EL1", (3, 0, 2, 0, 1), (), reset=None, doc="Translation Table Base Register 1 (EL1)"),
    # CSSELR_EL1 matters here only as the slot patch 2's swapped call can write (sys_regs[2] in
    # 5.15): a guest OSLAR write after userspace planted OSLSR_EL1 = 0x0 sends it there.
    _reg("CSSELR_EL1", (3, 2, 0, 0, 0), (_f("InD", 0), _f("Level", 3, 1), _f("TnD", 4)), reset=None,
         doc="Cache Size Selection Register"),
    _reg("SPSR_EL1", (3, 0, 4, 0, 0), (_f("SS", 21), _f("D", 9)), reset=None),
    _reg("FAR_EL1", (3, 0, 6, 0, 0), (), reset=None),
    _reg("VBAR_EL1", (3, 0, 12, 0, 0), (), reset=None),
]
for _n in range(16):
    _DECLS += [
        _reg(f"DBGBVR{_n}_EL1", (2, 0, 0, _n, 4), (), reset=None, doc=f"breakpoint {_n} value"),
        _reg(f"DBGBCR{_n}_EL1", (2, 0, 0, _n, 5), _BCR_FIELDS, reset=None, doc=f"breakpoint {_n} control"),
        _reg(f"DBGWVR{_n}_EL1", (2, 0, 0, _n, 6), (), reset=None, doc=f"watchpoint {_n} value"),
        _reg(f"DBGWCR{_n}_EL1", (2, 0, 0, _n, 7), _WCR_FIELDS, reset=None, doc=f"watchpoint {_n} control"),
    ]

REGISTERS: Mapping[str, SysReg] = MappingProxyType({r.name: r for r in _DECLS})
_BY_ENCODING: Mapping[Encoding, SysReg] = MappingProxyType(
    {r.encoding: r for r in _DECLS if r.encoding is not None}
)
_BY_KVM_ID: Mapping[int, SysReg] = MappingProxyType({e.kvm_id: r for e, r in _BY_ENCODING.items()})

# AArch32 views: MCR/MRC p14, opc1, <Rt>, CRn, CRm, opc2 (Arm ARM, G8.3).
CP14_REGISTERS: Mapping[str, Cp14Reg] = MappingProxyType(
    {
        r.name: r
        for r in (
            Cp14Reg("DBGOSLAR", 0, 1, 0, 4, "OSLAR_EL1", Access.WO),
            Cp14Reg("DBGOSLSR", 0, 1, 1, 4, "OSLSR_EL1", Access.RO),
            Cp14Reg("DBGOSDLR", 0, 1, 3, 4, "OSDLR_EL1"),
            Cp14Reg("DBGPRCR", 0, 1, 4, 4, "DBGPRCR_EL1"),
        )
    }
)


def lookup(reg: str | int | SysReg) -> SysReg:
    """The register named ``reg`` (any case) or with KVM userspace id ``reg``."""
    if isinstance(reg, SysReg):
        return reg
    if isinstance(reg, str):
        found = REGISTERS.get(reg.strip().upper())
        if found is not None:
            return found
        if reg.strip().upper() in CP14_REGISTERS:
            # The AArch32 name of a register we model: point at the AArch64 one.
            return REGISTERS[CP14_REGISTERS[reg.strip().upper()].aarch64]
        raise UnknownRegisterError(reg, REGISTERS)
    if isinstance(reg, int) and not isinstance(reg, bool):
        found = _BY_KVM_ID.get(reg)
        if found is not None:
            return found
        raise UnknownRegisterError(hex(reg), REGISTERS)
    raise UnknownRegisterError(reg, REGISTERS)


def lookup_encoding(enc: Encoding) -> SysReg | None:
    """The register with this encoding, or None if the model has no name for it."""
    return _BY_ENCODING.get(enc)


def reg_id(reg: str | int | SysReg) -> int:
    """The 64-bit KVM userspace id of a system register (KVM_GET/SET_ONE_REG)."""
    return lookup(reg).kvm_id


def check_value(value: object, what: str = "value") -> int:
    """``value`` as a 64-bit unsigned integer, or a RegisterValueError that says why not."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        # True is an int in Python, but a flag where a register value belongs is a mistake.
        raise RegisterTypeError(f"{what} must be an integer, not a bool ({value!r}); pass 1 or 0")
    if not isinstance(value, int):
        try:
            import operator

            value = operator.index(value)  # type: ignore[arg-type]  # numpy integers and IntEnums are fine
        except TypeError:
            raise RegisterTypeError(
                f"{what} must be an integer, not {type(value).__name__} ({value!r}); "
                "pass a number such as 0x1"
            ) from None
    assert isinstance(value, int)
    if value < 0:
        raise RegisterValueError(
            f"{what} {value} is negative; registers hold unsigned 64-bit values "
            f"(use {value & MASK64:#x} for the two's complement)"
        )
    if value > MASK64:
        raise RegisterValueError(
            f"{what} {value:#x} is wider than 64 bits; registers are 64 bits wide"
        )
    return value
