"""A small AArch64 (A64) assembler, disassembler and decoder.

Guest programs in kvmdbg are written in a tiny subset of A64 assembly. This
module turns that text into the real 32-bit instruction words an Arm CPU would
fetch (:func:`assemble`), turns words back into text (:func:`disassemble`) and
splits words into fields for the instruction executor (:func:`decode`). The
encodings are those of the Arm Architecture Reference Manual (DDI 0487),
section C4 "A64 Instruction Set Encoding"; the test suite checks every form
against the Capstone disassembler.

Every instruction is described once, as a row of :data:`FORMS`: its decode
op, its encoding written the way the Arm ARM draws it, the small function
that turns the encoding's fields into :class:`Insn` fields, and the source
syntaxes that assemble to it and print it. The decoder, the disassembler, the
assembler, :data:`OPS`, :data:`SP_OPERANDS`, the usage text of errors and the
table below (:func:`syntax_table`) are all read off that table.

The supported subset
====================

``X`` is an x register, ``W`` a w register, ``R`` either (all registers of one
instruction must have the same width). ``T`` is a branch target: a label, an
absolute address (``0x80010``, ``#0x80010``) or an offset from the
instruction itself (``.``, ``.+8``, ``.-0x10``). The last column says what
register number 31 means in each register field of :class:`Insn`; anywhere
it is not listed as SP it is the zero register (xzr/wzr).

========================================  ===========  =============================================================
Source form                               decode op    Meaning; range; register 31
========================================  ===========  =============================================================
``orr R, R, R[, lsl|lsr|asr|ror #n]``     orr_reg      Rd = Rn OR (Rm shifted by imm6); n 0..63 (w: 0..31); no sp
``mov R, R``                              orr_reg      alias of ``orr Rd, zr, Rm``
``orr R|sp, R, #bitmask``                 orr_imm      Rd = Rn OR a logical immediate; bitmask: a rotated run of
                                                       ones, repeated in elements of 2, 4, 8, 16, 32 or 64 bits; rd:
                                                       31 = SP
``add R|sp, R|sp, #imm[, lsl #12]``       add_imm      Rd = Rn + imm12, shifted left by 0 or 12; imm 0..4095 (or a
                                                       multiple of 4096 up to 4095 << 12); rd, rn: 31 = SP
``mov X|sp, X|sp``                        add_imm      one side sp; alias of ``add Rd, Rn, #0``; rd, rn: 31 = SP
``sub R|sp, R|sp, #imm[, lsl #12]``       sub_imm      Rd = Rn - imm12, shifted left by 0 or 12; imm 0..4095 (or a
                                                       multiple of 4096 up to 4095 << 12); rd, rn: 31 = SP
``add R, R, R[, lsl|lsr|asr #n]``         add_reg      Rd = Rn + (Rm shifted by imm6); n 0..63 (w: 0..31); no sp
``sub R, R, R[, lsl|lsr|asr #n]``         sub_reg      Rd = Rn - (Rm shifted by imm6); n 0..63 (w: 0..31); no sp
``movz R, #imm16[, lsl #s]``              movz         Rd = imm16 << 16 * hw, the other bits zero; imm16 0..65535; s
                                                       0/16/32/48 (w: 0/16)
``mov R, #imm``                           movz         alias of movz or movn, whichever makes the value; a value
                                                       neither makes is an error that shows the movz/movk lines
``movn R, #imm16[, lsl #s]``              movn         Rd = NOT(imm16 << 16 * hw); imm16 0..65535; s 0/16/32/48 (w:
                                                       0/16)
``mov R, #imm``                           movn         alias of movn (assembled by the row above)
``movk R, #imm16[, lsl #s]``              movk         bits 16 * hw + 15 .. 16 * hw of Rd = imm16, the other bits
                                                       kept; imm16 0..65535; s 0/16/32/48 (w: 0/16)
``adr X, T``                              adr          Rd = the address of the instruction + offset; -1 MiB .. +1
                                                       MiB - 1, any byte
``ldr R, [X|sp{, #off}]``                 ldr          load Rt from Rn + imm12 * the access size; off 0..32760 step
                                                       8 (x), 0..16380 step 4 (w); rn: 31 = SP
``ldr R, T``                              ldr_lit      load Rt from the address of the instruction + offset; literal
                                                       load, ±1 MiB, multiple of 4
``str R, [X|sp{, #off}]``                 str          store Rt to Rn + imm12 * the access size; off 0..32760 step 8
                                                       (x), 0..16380 step 4 (w); rn: 31 = SP
``msr SYSREG, X``                         msr          write Xt to the system register (2 + o0, op1, CRn, CRm, op2);
                                                       SYSREG: any name in REGISTERS (any case) or
                                                       ``s<op0>_<op1>_c<n>_c<m>_<op2>``, op0 2 or 3
``msr daifset, #imm4``                    msr_daifset  mask the exceptions whose PSTATE.{D, A, I, F} bits are set in
                                                       CRm; imm 0..15 (D A I F mask bits)
``msr daifclr, #imm4``                    msr_daifclr  unmask the exceptions whose PSTATE.{D, A, I, F} bits are set
                                                       in CRm; imm 0..15 (D A I F mask bits)
``mrs X, SYSREG``                         mrs          read the system register (2 + o0, op1, CRn, CRm, op2) into
                                                       Xt; SYSREG: any name in REGISTERS (any case) or
                                                       ``s<op0>_<op1>_c<n>_c<m>_<op2>``, op0 2 or 3
``isb``                                   isb          instruction synchronization barrier; ``isb sy`` is accepted
                                                       too
``nop``                                   nop          no operation
``eret``                                  eret         exception return: pc = ELR, PSTATE = SPSR of the current EL
``brk #imm16``                            brk          breakpoint exception, with a 16-bit comment; imm 0..65535
``hvc #imm16``                            hvc          hypervisor call (to EL2); imm 0..65535
``svc #imm16``                            svc          supervisor call (to EL1); imm 0..65535
``udf #imm16``                            udf          permanently undefined; imm 0..65535
``b T``                                   b            branch to the address of the instruction + offset; ±128 MiB,
                                                       multiple of 4
``bl T``                                  bl           branch with link: x30 = the address of the next instruction;
                                                       ±128 MiB, multiple of 4
``b.<cond> T``                            b_cond       branch if the condition holds on NZCV; ±1 MiB, multiple of 4;
                                                       eq ne cs/hs cc/lo mi pl vs vc hi ls ge lt gt le al nv
``cbz R, T``                              cbz          branch if Rt is zero; ±1 MiB, multiple of 4
``cbnz R, T``                             cbnz         branch if Rt is not zero; ±1 MiB, multiple of 4
``ret [X]``                               ret          return: branch to Xn; default x30
``.word imm32[, imm32 ...]`` (``.inst``)  (any)        emits the words as they are
========================================  ===========  =============================================================

Words outside the subset decode to op ``"unknown"`` and disassemble to
``.inst 0x........``. The full set of ``decode`` ops is :data:`OPS`. An orr
bitmask word that sets immr bits the element size ignores decodes normally
but disassembles as ``.inst 0x........  // orr ...`` so that the text still
assembles back to the same word.

Source syntax: one statement per line; ``name:`` labels (case-sensitive,
several may precede an instruction on the same line); comments start with
``//`` or ``;``; mnemonics, registers and system register names are
case-insensitive; immediates are decimal, ``0x`` hex or ``0b`` binary, with an
optional ``#`` and sign.

MSR to a read-only register and MRS from a write-only one (``mrs x0,
oslar_el1``) assemble without complaint: the architecture makes them UNDEFINED
at run time, and lessons use them to show the guest taking that exception.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import NamedTuple, TypedDict

from kvmdbg.arch.registers import REGISTERS, Encoding, lookup_encoding
from kvmdbg.errors import AsmError, AsmTypeError

__all__ = [
    "Program",
    "Insn",
    "FORMS",
    "OPS",
    "SP_OPERANDS",
    "CONDITIONS",
    "assemble",
    "disassemble",
    "decode",
    "encode_bitmask",
    "decode_bitmask",
]

MASK32 = 0xFFFF_FFFF
MASK64 = (1 << 64) - 1
ADDRESS_LIMIT = 1 << 48

CONDITIONS: tuple[str, ...] = (
    "eq", "ne", "hs", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al", "nv",
)
"""Condition names by their 4-bit encoding (the spelling :func:`disassemble` uses)."""

_COND_BY_NAME = {name: i for i, name in enumerate(CONDITIONS)} | {"cs": 2, "cc": 3}


# --- Logical (bitmask) immediates ---------------------------------------------


def _ones(n: int) -> int:
    return (1 << n) - 1


def _ror(value: int, amount: int, width: int) -> int:
    amount %= width
    return ((value >> amount) | (value << (width - amount))) & _ones(width)


def decode_bitmask(n: int, immr: int, imms: int, datasize: int) -> int | None:
    """The value of a logical immediate (N, immr, imms), or None if reserved.

    A bitmask immediate is a run of ``s + 1`` ones rotated right by ``r``
    inside an element of 2, 4, 8, 16, 32 or 64 bits, repeated to fill the
    register. The element size is given by the highest set bit of
    ``N:NOT(imms)``.
    """
    if datasize == 32 and n:
        return None
    combined = (n << 6) | (~imms & 0x3F)
    if combined == 0:
        return None
    length = combined.bit_length() - 1
    if length < 1:
        return None
    levels = _ones(length)
    s = imms & levels
    r = immr & levels
    if s == levels:  # all ones in an element is not encodable
        return None
    esize = 1 << length
    element = _ror(_ones(s + 1), r, esize)
    value = 0
    for i in range(datasize // esize):
        value |= element << (i * esize)
    return value


def encode_bitmask(value: int, datasize: int) -> tuple[int, int, int] | None:
    """``(N, immr, imms)`` encoding ``value`` as a logical immediate, or None."""
    value &= _ones(datasize)
    if value == 0 or value == _ones(datasize):
        return None
    esize = datasize
    while esize > 2:  # find the smallest repeating element
        half = esize // 2
        if (value >> half) & _ones(half) != value & _ones(half):
            break
        esize = half
    element = value & _ones(esize)
    count = bin(element).count("1")
    run = _ones(count)
    for r in range(esize):
        if _ror(run, r, esize) == element:
            n = 1 if esize == 64 else 0
            imms = ((~(2 * esize - 1)) & 0x3F) | (count - 1)
            return n, r, imms
    return None


# --- Decoded instructions -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Insn:
    """One decoded instruction word.

    ``rd``/``rn``/``rm``/``rt`` are register numbers 0..31 (None when the
    instruction has no such field); see :data:`SP_OPERANDS` for where 31 is SP.
    ``imm`` is op-specific: the unshifted 16-bit immediate for movz/movk/movn
    (``shift`` is 0/16/32/48), the unshifted 12-bit immediate for
    add_imm/sub_imm (``shift`` 0 or 12), the decoded bitmask for orr_imm, the
    byte offset for ldr/str, the 4-bit mask for msr_daifset/msr_daifclr and
    the 16-bit comment field for brk/hvc/udf. ``shift``/``shift_type`` also
    describe the shifted register of add_reg/sub_reg/orr_reg. ``sf`` is True
    for 64-bit forms, ``size`` the access size in bytes of ldr/str/ldr_lit.
    ``offset`` is the signed byte offset of pc-relative instructions (adr, b,
    bl, b_cond, cbz, cbnz, ldr_lit); :meth:`target_of` adds it to a pc.
    """

    op: str
    word: int
    rd: int | None = None
    rn: int | None = None
    rm: int | None = None
    rt: int | None = None
    imm: int = 0
    shift: int = 0
    shift_type: str = "lsl"
    sf: bool = True
    size: int = 0
    cond: int | None = None
    offset: int | None = None
    sysreg: Encoding | None = None
    is_read: bool = False

    def target_of(self, pc: int) -> int:
        """The address a pc-relative instruction at ``pc`` refers to."""
        if self.offset is None:
            raise ValueError(f"{self.op} is not a pc-relative instruction")
        return pc + self.offset

    @property
    def cond_name(self) -> str | None:
        return None if self.cond is None else CONDITIONS[self.cond]

    @property
    def sysreg_name(self) -> str | None:
        """The lowercase register name (or generic spelling) of msr/mrs."""
        if self.sysreg is None:
            return None
        known = lookup_encoding(self.sysreg)
        return known.name.lower() if known is not None else self.sysreg.generic_name()


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


_SHIFT_NAMES = ("lsl", "lsr", "asr", "ror")


# --- Instruction forms ------------------------------------------------------------
#
# The shape follows QEMU's decodetree (docs/devel/decodetree.rst): an encoding
# is a line of fixed bits and named fields, most significant bit first, and a
# small function per instruction class turns the fields into operands.

_FIELD_RE = re.compile(r"([a-z][a-z0-9]*):([1-9][0-9]?)")


@dataclass(frozen=True, slots=True)
class BitField:
    """A field of an encoding: ``width`` bits from bit ``lsb`` up."""

    name: str
    lsb: int
    width: int


def _parse_encoding(text: str) -> tuple[int, int, tuple[BitField, ...]]:
    """(fixed bits, mask of the fixed bits, fields) of an encoding such as ``"sf:1 10 100101 hw:2 ..."``."""
    bits = mask = 0
    fields: list[BitField] = []
    pos = 32
    for token in text.split():
        if set(token) <= {"0", "1"}:
            pos -= len(token)
            bits |= int(token, 2) << pos
            mask |= _ones(len(token)) << pos
            continue
        m = _FIELD_RE.fullmatch(token)
        if m is None:
            raise ValueError(f"bad token {token!r} in encoding {text!r}")
        pos -= int(m.group(2))
        fields.append(BitField(m.group(1), pos, int(m.group(2))))
    if pos != 0:
        raise ValueError(f"encoding {text!r} has {32 - pos} bits, not 32")
    return bits, mask, tuple(fields)


class InsnFields(TypedDict, total=False):
    """Keyword arguments of :class:`Insn` that a form's fields give."""

    rd: int | None
    rn: int | None
    rm: int | None
    rt: int | None
    imm: int
    shift: int
    shift_type: str
    sf: bool
    size: int
    cond: int | None
    offset: int | None
    sysreg: Encoding | None
    is_read: bool


@dataclass(frozen=True, slots=True)
class Syntax:
    """One way of writing a form in assembly source, and of printing it.

    ``show(mnemonic, insn, pc)`` is the disassembly; an alias's ``show``
    returns None for the words it is not the preferred text of (the Arm ARM
    gives each alias such a condition). ``parse`` reads the operands of a
    statement and returns the op it assembles to with that op's field
    values; None marks a syntax that is only ever printed. ``accepts`` picks
    this syntax among those sharing its mnemonic (None: always), after the
    statement has between ``count[0]`` and ``count[1]`` operands. ``usage``
    goes into error messages (joined with `` | `` over a mnemonic's
    syntaxes), ``source`` and ``note`` into the documentation table.
    ``b.<cond>`` stands for every condition spelling.
    """

    mnemonic: str
    source: str
    show: Callable[[str, Insn, int], str | None]
    parse: Callable[[_Stmt], _Encoded] | None = None
    count: tuple[int, int] = (0, 0)
    _: KW_ONLY
    accepts: Callable[[Sequence[_Operand]], bool] | None = None
    usage: str = ""
    note: str = ""

    @property
    def spellings(self) -> tuple[str, ...]:
        """The mnemonics a statement may use for this syntax."""
        if self.mnemonic == "b.<cond>":
            return tuple(f"b.{c}" for c in _COND_BY_NAME)
        return (self.mnemonic,)


@dataclass(frozen=True, slots=True)
class Form:
    """One instruction form: a decode op, its encoding and its syntaxes.

    ``to_insn`` gets the encoding's field values by name and returns the
    :class:`Insn` fields they mean, or None for a reserved combination
    (decoded as ``"unknown"``). Fields named like :class:`Insn` attributes
    (rd, rn, rm, rt, cond, sf) go into the Insn as they are, without help.
    ``syntax`` is the instruction's own spelling and ``aliases`` the others
    (tried first when printing); ``sp`` names the register fields in which
    31 means SP.
    """

    op: str
    encoding: str
    to_insn: Callable[[dict[str, int]], InsnFields | None]
    doc: str
    syntax: Syntax
    aliases: tuple[Syntax, ...] = ()
    sp: tuple[str, ...] = ()
    bits: int = field(init=False, repr=False)
    mask: int = field(init=False, repr=False)
    fields: tuple[BitField, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        bits, mask, fields = _parse_encoding(self.encoding)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "fields", fields)

    @property
    def syntaxes(self) -> tuple[Syntax, ...]:
        return (self.syntax, *self.aliases)

    def matches(self, word: int) -> bool:
        return word & self.mask == self.bits

    def unpack(self, word: int) -> dict[str, int]:
        return {f.name: word >> f.lsb & _ones(f.width) for f in self.fields}

    def pack(self, values: Mapping[str, int]) -> int:
        """The word with these field values (every field, each in range)."""
        if set(values) != {f.name for f in self.fields}:
            raise ValueError(f"{self.op} takes fields {[f.name for f in self.fields]}, not {sorted(values)}")
        word = self.bits
        for f in self.fields:
            value = int(values[f.name])
            if not 0 <= value <= _ones(f.width):
                raise ValueError(f"{self.op} field {f.name} = {value} does not fit in {f.width} bits")
            word |= value << f.lsb
        return word

    def decode(self, word: int) -> Insn:
        values = self.unpack(word)
        meaning = self.to_insn(values)
        if meaning is None:
            return Insn("unknown", word)
        kwargs: InsnFields = {"rd": values.get("rd"), "rn": values.get("rn"), "rm": values.get("rm"),
                              "rt": values.get("rt"), "cond": values.get("cond"), "sf": bool(values.get("sf", 1))}
        kwargs.update(meaning)
        return Insn(self.op, word, **kwargs)

    def show(self, insn: Insn, pc: int) -> str:
        """The preferred text of ``insn``: the first alias that applies, else the form's own syntax."""
        for syntax in (*self.aliases, self.syntax):
            text = syntax.show(syntax.mnemonic, insn, pc)
            if text is not None:
                return text
        raise AssertionError(f"{self.op}: its own syntax must always print")


# --- From an encoding's fields to Insn fields -------------------------------------


def _direct_fields(f: dict[str, int]) -> InsnFields:
    """For forms whose fields all go into the Insn as they are (or that have none)."""
    return {}


def _wide_immediate(f: dict[str, int]) -> InsnFields | None:
    """MOVZ/MOVN/MOVK: imm16 shifted left by 16 * hw; 32-bit forms have only hw 0 and 1."""
    if not f["sf"] and f["hw"] >= 2:
        return None
    return {"imm": f["imm16"], "shift": 16 * f["hw"]}


def _add_sub_immediate(f: dict[str, int]) -> InsnFields:
    return {"imm": f["imm12"], "shift": 12 * f["sh"]}


def _logical_immediate(f: dict[str, int]) -> InsnFields | None:
    """ORR (immediate): the value of the bitmask (N, immr, imms); reserved combinations are unknown."""
    value = decode_bitmask(f["n"], f["immr"], f["imms"], 64 if f["sf"] else 32)
    return None if value is None else {"imm": value}


def _adr_offset(f: dict[str, int]) -> InsnFields:
    return {"offset": _signed(f["immhi"] << 2 | f["immlo"], 21)}


def _logical_shifted_register(f: dict[str, int]) -> InsnFields | None:
    """ORR (shifted register); ``shift`` is the Arm ARM's name for the shift type, imm6 the amount."""
    if not f["sf"] and f["imm6"] >= 32:
        return None
    return {"shift": f["imm6"], "shift_type": _SHIFT_NAMES[f["shift"]]}


def _add_sub_shifted_register(f: dict[str, int]) -> InsnFields | None:
    """ADD/SUB (shifted register): as ORR, but shift type 11 (ror) is reserved."""
    return None if f["shift"] == 3 else _logical_shifted_register(f)


def _unsigned_offset(f: dict[str, int]) -> InsnFields:
    """LDR/STR (immediate, unsigned offset): x is the low bit of size; imm12 counts accesses."""
    size = 8 if f["x"] else 4
    return {"imm": f["imm12"] * size, "size": size, "sf": size == 8}


def _literal(f: dict[str, int]) -> InsnFields:
    size = 8 if f["x"] else 4
    return {"size": size, "sf": size == 8, "offset": _signed(f["imm19"], 19) * 4}


def _system_register(f: dict[str, int]) -> InsnFields:
    """MSR/MRS (register): op0 is 2 or 3, so only its low bit (o0) is in the word."""
    return {"sysreg": Encoding(2 | f["o0"], f["op1"], f["crn"], f["crm"], f["op2"])}


def _system_register_read(f: dict[str, int]) -> InsnFields:
    return _system_register(f) | {"is_read": True}


def _daif_mask(f: dict[str, int]) -> InsnFields:
    return {"imm": f["crm"]}


def _imm16(f: dict[str, int]) -> InsnFields:
    return {"imm": f["imm16"]}


def _branch26(f: dict[str, int]) -> InsnFields:
    return {"offset": _signed(f["imm26"], 26) * 4}


def _branch19(f: dict[str, int]) -> InsnFields:
    return {"offset": _signed(f["imm19"], 19) * 4}


# --- Disassembly: the text of each syntax -----------------------------------------


def _reg(n: int | None, sf: bool, sp: bool = False) -> str:
    assert n is not None, "decode() left a register field empty"
    if n == 31:
        return ("sp" if sf else "wsp") if sp else ("xzr" if sf else "wzr")
    return f"{'x' if sf else 'w'}{n}"


def _num(value: int) -> str:
    """Numbers the way Capstone prints them: small ones in decimal, others in hex."""
    if -9 <= value <= 9:
        return str(value)
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def _imm(value: int) -> str:
    return "#" + _num(value)


def _addr(pc: int, offset: int | None) -> str:
    assert offset is not None, "decode() left a pc-relative offset empty"
    target = pc + offset
    if 0 <= target <= MASK64:
        return f"{target:#x}"
    return "." if offset == 0 else f".{'+' if offset > 0 else '-'}{abs(offset):#x}"


def _shift_suffix(insn: Insn) -> str:
    if insn.shift == 0 and insn.shift_type == "lsl":
        return ""
    return f", {insn.shift_type} {_imm(insn.shift)}"



def _show_move_wide(m: str, insn: Insn, pc: int) -> str:
    suffix = f", lsl {_imm(insn.shift)}" if insn.shift else ""
    return f"{m} {_reg(insn.rd, insn.sf)}, {_imm(insn.imm)}{suffix}"


def _show_mov_wide(m: str, insn: Insn, pc: int) -> str | None:
    """MOV (wide immediate) for movz, MOV (inverted wide immediate) for movn, with the value moved.

    Not for a zero imm16 with hw > 0, nor for a 32-bit movn of imm16 0xffff:
    mov of those values assembles to another word, so the Arm ARM prints
    them as plain movz/movn.
    """
    if insn.imm == 0 and insn.shift:
        return None
    if insn.op == "movn" and not insn.sf and insn.imm == 0xFFFF:
        return None
    bits = 64 if insn.sf else 32
    value = insn.imm << insn.shift
    if insn.op == "movn":
        value = ~value & _ones(bits)
    return f"{m} {_reg(insn.rd, insn.sf)}, {_imm(_signed(value, bits))}"


def _show_add_sub_immediate(m: str, insn: Insn, pc: int) -> str:
    rd, rn = _reg(insn.rd, insn.sf, sp=True), _reg(insn.rn, insn.sf, sp=True)
    suffix = ", lsl #12" if insn.shift else ""
    return f"{m} {rd}, {rn}, {_imm(insn.imm)}{suffix}"


def _show_mov_sp(m: str, insn: Insn, pc: int) -> str | None:
    """MOV (to/from SP): add #0 with sp on one side (or both)."""
    if insn.imm != 0 or insn.shift != 0 or 31 not in (insn.rd, insn.rn):
        return None
    return f"{m} {_reg(insn.rd, insn.sf, sp=True)}, {_reg(insn.rn, insn.sf, sp=True)}"


def _show_shifted_register(m: str, insn: Insn, pc: int) -> str:
    rd, rn, rm = _reg(insn.rd, insn.sf), _reg(insn.rn, insn.sf), _reg(insn.rm, insn.sf)
    return f"{m} {rd}, {rn}, {rm}{_shift_suffix(insn)}"


def _show_mov_register(m: str, insn: Insn, pc: int) -> str | None:
    """MOV (register): orr from the zero register, unshifted."""
    if insn.rn != 31 or _shift_suffix(insn):
        return None
    return f"{m} {_reg(insn.rd, insn.sf)}, {_reg(insn.rm, insn.sf)}"


def _show_logical_immediate(m: str, insn: Insn, pc: int) -> str:
    """ORR (immediate); a word whose (N, immr, imms) is not the canonical one shows as .inst.

    Such a word sets immr bits the element size ignores: it decodes to the
    same value, but our text would assemble to a different word.
    """
    text = f"{m} {_reg(insn.rd, insn.sf, sp=True)}, {_reg(insn.rn, insn.sf)}, #{insn.imm:#x}"
    f = _FORM_BY_OP[insn.op].unpack(insn.word)
    if encode_bitmask(insn.imm, 64 if insn.sf else 32) != (f["n"], f["immr"], f["imms"]):
        return f".inst {insn.word:#010x}  // {text}"
    return text


def _show_adr(m: str, insn: Insn, pc: int) -> str:
    return f"{m} {_reg(insn.rd, True)}, {_addr(pc, insn.offset)}"


def _show_unsigned_offset(m: str, insn: Insn, pc: int) -> str:
    base = _reg(insn.rn, True, sp=True)
    mem = f"[{base}, {_imm(insn.imm)}]" if insn.imm else f"[{base}]"
    return f"{m} {_reg(insn.rt, insn.sf)}, {mem}"


def _show_register_and_target(m: str, insn: Insn, pc: int) -> str:
    """ldr (literal), cbz, cbnz: a register then a pc-relative target."""
    return f"{m} {_reg(insn.rt, insn.sf)}, {_addr(pc, insn.offset)}"


def _show_msr(m: str, insn: Insn, pc: int) -> str:
    return f"{m} {insn.sysreg_name}, {_reg(insn.rt, True)}"


def _show_mrs(m: str, insn: Insn, pc: int) -> str:
    return f"{m} {_reg(insn.rt, True)}, {insn.sysreg_name}"


def _show_daif(m: str, insn: Insn, pc: int) -> str:
    return f"{m} {insn.op.removeprefix('msr_')}, {_imm(insn.imm)}"


def _show_bare(m: str, insn: Insn, pc: int) -> str:
    return m


def _show_imm(m: str, insn: Insn, pc: int) -> str:
    return f"{m} {_imm(insn.imm)}"


def _show_ret(m: str, insn: Insn, pc: int) -> str:
    return m if insn.rn == 30 else f"{m} {_reg(insn.rn, True)}"


def _show_target(m: str, insn: Insn, pc: int) -> str:
    return f"{m} {_addr(pc, insn.offset)}"


def _show_b_cond(m: str, insn: Insn, pc: int) -> str:
    return f"b.{insn.cond_name} {_addr(pc, insn.offset)}"


# --- Lexing ----------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"[ \t]+"
    r"|(?P<comment>//|;)"
    r"|(?P<num>[0-9][0-9A-Za-z_]*)"
    r"|(?P<ident>[A-Za-z_.$][A-Za-z0-9_.$]*)"
    r"|(?P<punct>[,\[\]:!#+\-])"
    r"|(?P<bad>.)",
    re.DOTALL,
)
_MAX_NUMBER_CHARS = 70


class _Tok(NamedTuple):
    kind: str  # "num", "ident" or "punct"
    text: str
    col: int  # 1-based
    value: int = 0  # for numbers

    @property
    def end(self) -> int:
        return self.col + len(self.text)


class _Line:
    """One source line being assembled: its tokens and a way to complain about them."""

    def __init__(self, number: int, text: str) -> None:
        self.number = number
        self.text = text
        self.tokens = self._lex()

    def error(self, message: str, col: int) -> AsmError:
        return AsmError(message, self.number, col, self.text)

    @property
    def end_col(self) -> int:
        return self.tokens[-1].end if self.tokens else 1

    def _lex(self) -> list[_Tok]:
        tokens: list[_Tok] = []
        for m in _TOKEN_RE.finditer(self.text):
            kind = m.lastgroup
            if kind is None:  # white space
                continue
            if kind == "comment":
                break
            col = m.start() + 1
            if kind == "bad":
                raise self.error(f"unexpected character {m.group()!r}", col)
            value = self._number(m.group(), col) if kind == "num" else 0
            tokens.append(_Tok(kind, m.group(), col, value))
        return tokens

    def _number(self, text: str, col: int) -> int:
        if text == "0":
            return 0
        if len(text) > _MAX_NUMBER_CHARS:
            raise self.error(f"number {text[:20]}... is too long", col)
        low = text.lower()
        try:
            if low.startswith("0x"):
                return int(low[2:], 16)
            if low.startswith("0b"):
                return int(low[2:], 2)
            if low.isdigit() and low.isascii():
                return int(low, 10)
        except ValueError:
            pass
        raise self.error(f"bad number {text!r}: write decimal (42), hex (0x2a) or binary (0b101010)", col)


@dataclass(frozen=True, slots=True)
class _Operand:
    tokens: tuple[_Tok, ...]

    @property
    def col(self) -> int:
        return self.tokens[0].col


def _split_operands(line: _Line, toks: list[_Tok]) -> list[_Operand]:
    ops: list[_Operand] = []
    current: list[_Tok] = []
    depth = 0
    comma_col = None
    for tok in toks:
        if tok.kind == "punct" and tok.text == "[":
            depth += 1
        elif tok.kind == "punct" and tok.text == "]":
            depth -= 1
        if tok.kind == "punct" and tok.text == "," and depth <= 0:
            if not current:
                raise line.error("missing operand before ','", tok.col)
            ops.append(_Operand(tuple(current)))
            current = []
            comma_col = tok.col
            continue
        current.append(tok)
    if current:
        ops.append(_Operand(tuple(current)))
    elif comma_col is not None:
        raise line.error("missing operand after ','", comma_col + 1)
    return ops


# --- Operand parsing ---------------------------------------------------------------

_GP_RE = re.compile(r"([xw])(0|[1-9][0-9]*)")
_GENERIC_SYSREG_RE = re.compile(r"s([0-9]+)_([0-9]+)_c([0-9]+)_c([0-9]+)_([0-9]+)")
_SPECIAL_REGS = {
    "xzr": (31, True, "zr"), "wzr": (31, False, "zr"), "sp": (31, True, "sp"), "wsp": (31, False, "sp"),
}


@dataclass(frozen=True, slots=True)
class _Reg:
    num: int
    is64: bool
    kind: str  # "gp", "zr" or "sp"
    col: int
    name: str


def _register_or_none(tok: _Tok) -> _Reg | None:
    if tok.kind != "ident":
        return None
    name = tok.text.lower()
    if name in _SPECIAL_REGS:
        num, is64, kind = _SPECIAL_REGS[name]
        return _Reg(num, is64, kind, tok.col, name)
    m = _GP_RE.fullmatch(name)
    if m is None:
        return None
    return _Reg(int(m.group(2)) if len(m.group(2)) < 6 else 10**6, m.group(1) == "x", "gp", tok.col, name)


def _is_register_name(text: str) -> bool:
    return _register_or_none(_Tok("ident", text, 1)) is not None


def _is_imm(op: _Operand) -> bool:
    first = op.tokens[0]
    return first.kind == "num" or (first.kind == "punct" and first.text in "#+-")


class _Stmt:
    """One instruction statement: mnemonic, operands, address and label table."""

    def __init__(self, line: _Line, mnemonic: _Tok, operands: list[_Operand], pc: int) -> None:
        self.line = line
        self.mnemonic_tok = mnemonic
        self.mnemonic = mnemonic.text.lower()
        self.operands = operands
        self.pc = pc
        self.labels: Mapping[str, int] = {}

    def error(self, message: str, col: int) -> AsmError:
        return self.line.error(message, col)

    def usage(self) -> str:
        return _USAGE.get(self.mnemonic, "")

    def count(self, low: int, high: int | None = None) -> list[_Operand]:
        high = low if high is None else high
        ops = self.operands
        if len(ops) < low:
            what = "an operand" if not ops else "another operand"
            raise self.error(f"missing operand: {self.mnemonic} needs {what}; usage: {self.usage()}",
                             self.line.end_col)
        if len(ops) > high:
            extra = ops[high]
            raise self.error(f"unexpected extra operand; usage: {self.usage()}", extra.col)
        return ops

    # Registers.
    def reg(self, op: _Operand, *, sp: bool = False, zr: bool = True, w: bool = True, x: bool = True,
            same_as: _Reg | None = None, role: str = "register") -> _Reg:
        tok = op.tokens[0]
        r = _register_or_none(tok)
        if r is None:
            kinds = " or ".join(k for k, ok in (("an x register", x), ("a w register", w)) if ok)
            raise self.error(f"expected {kinds} as the {role}, got {tok.text!r}", tok.col)
        if len(op.tokens) > 1:
            raise self.error(f"unexpected {op.tokens[1].text!r} after register {tok.text}", op.tokens[1].col)
        if r.kind == "gp" and r.num > 30:
            prefix = r.name[0]
            hint = f"; use {prefix}zr for the zero register or sp" if r.num == 31 else ""
            raise self.error(f"register {tok.text} out of range: use {prefix}0 to {prefix}30{hint}", tok.col)
        if r.kind == "sp" and not sp:
            raise self.error(f"{tok.text} (the stack pointer) is not allowed as the {role} of "
                             f"{self.mnemonic} here; register 31 means the zero register in this field",
                             tok.col)
        if r.kind == "zr" and not zr:
            raise self.error(f"{tok.text} is not allowed as the {role} of {self.mnemonic}: register 31 "
                             "means sp in this field", tok.col)
        if r.is64 and not x:
            raise self.error(f"expected a w register as the {role}, got {tok.text}", tok.col)
        if not r.is64 and not w:
            raise self.error(f"expected an x register as the {role}, got {tok.text}; "
                             f"{self.mnemonic} takes 64-bit registers here", tok.col)
        if same_as is not None and r.is64 != same_as.is64:
            raise self.error(f"register {tok.text} has a different width from {same_as.name}: use all x "
                             "or all w registers", tok.col)
        return r

    # Immediates.
    def imm(self, op: _Operand, low: int, high: int, what: str = "immediate",
            toks: tuple[_Tok, ...] | None = None) -> int:
        value, col = self.number(op if toks is None else _Operand(toks))
        if not low <= value <= high:
            raise self.error(
                f"{what} {value} out of range: use {low} to {high} ({_num(low)} to {_num(high)})", col
            )
        return value

    def number(self, op: _Operand) -> tuple[int, int]:
        toks = list(op.tokens)
        col = toks[0].col
        if toks and toks[0].text == "#":
            toks.pop(0)
        sign = 1
        if toks and toks[0].text in "+-" and toks[0].kind == "punct":
            sign = -1 if toks[0].text == "-" else 1
            toks.pop(0)
        if not toks or toks[0].kind != "num":
            bad = toks[0] if toks else op.tokens[-1]
            raise self.error(f"expected an immediate such as #4, got {bad.text!r}", bad.col)
        if len(toks) > 1:
            raise self.error(f"unexpected {toks[1].text!r} after the immediate", toks[1].col)
        return sign * toks[0].value, col

    def shift(self, op: _Operand, allowed: tuple[str, ...], max_amount: int) -> tuple[str, int]:
        tok = op.tokens[0]
        kind = tok.text.lower()
        if tok.kind != "ident" or kind not in allowed:
            raise self.error(f"expected a shift ({', '.join(a + ' #n' for a in allowed)}), got {tok.text!r}",
                             tok.col)
        if len(op.tokens) < 2:
            raise self.error(f"missing shift amount after {tok.text}", tok.end)
        amount = self.imm(op, 0, max_amount, "shift amount", toks=op.tokens[1:])
        return kind, amount

    # Targets.
    def target(self, op: _Operand) -> tuple[int, int]:
        """(absolute address, column) of a branch/adr/literal target."""
        toks = op.tokens
        first = toks[0]
        if first.kind == "ident" and first.text == ".":
            if len(toks) == 1:
                return self.pc, first.col
            if toks[1].kind != "punct" or toks[1].text not in "+-" or len(toks) != 3 or toks[2].kind != "num":
                raise self.error("expected '.', '.+offset' or '.-offset'", toks[1].col)
            sign = -1 if toks[1].text == "-" else 1
            return self.pc + sign * toks[2].value, first.col
        if first.kind == "ident":
            if _register_or_none(first) is not None:
                raise self.error(f"expected a label or address, got register {first.text}", first.col)
            if len(toks) > 1:
                raise self.error(f"unexpected {toks[1].text!r} after label {first.text}", toks[1].col)
            if first.text not in self.labels:
                close = difflib.get_close_matches(first.text, list(self.labels), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise self.error(f"undefined label {first.text!r}{hint}", first.col)
            return self.labels[first.text], first.col
        value, col = self.number(op)
        if value < 0:
            raise self.error(f"target address {value} is negative; write '.-{-value}' for an offset "
                             "back from this instruction", col)
        return value, col

    def offset(self, op: _Operand, bits: int, scale: int, what: str) -> int:
        address, col = self.target(op)
        offset = address - self.pc
        if offset % scale:
            raise self.error(f"{what} target {address:#x} is misaligned: it must be a multiple of {scale} "
                             "bytes away", col)
        limit = (1 << (bits - 1)) * scale
        if not -limit <= offset < limit:
            raise self.error(f"{what} target {address:#x} out of range: it is {offset:+#x} bytes away and "
                             f"{self.mnemonic} reaches -{limit:#x} to +{limit - scale:#x}", col)
        return (offset // scale) & _ones(bits)

    def sysreg(self, op: _Operand) -> Encoding:
        tok = op.tokens[0]
        if tok.kind != "ident" or _register_or_none(tok) is not None:
            raise self.error(f"expected a system register name such as oslsr_el1, got {tok.text!r}", tok.col)
        if len(op.tokens) > 1:
            raise self.error(f"unexpected {op.tokens[1].text!r} after {tok.text}", op.tokens[1].col)
        name = tok.text.lower()
        m = _GENERIC_SYSREG_RE.fullmatch(name)
        if m is not None:
            fields = [int(g) if len(g) < 4 else 9999 for g in m.groups()]
            op0, op1, crn, crm, op2 = fields
            if op0 not in (2, 3):
                raise self.error(f"op0 of {tok.text} must be 2 or 3 (op0 0 and 1 encode other system "
                                 "instructions, not registers)", tok.col)
            for value, limit, label in ((op1, 7, "op1"), (crn, 15, "CRn"), (crm, 15, "CRm"), (op2, 7, "op2")):
                if value > limit:
                    raise self.error(f"{label} of {tok.text} out of range: use 0 to {limit}", tok.col)
            return Encoding(op0, op1, crn, crm, op2)
        reg = REGISTERS.get(name.upper())
        if reg is None or reg.encoding is None:
            names = [n for n, r in REGISTERS.items() if r.encoding is not None]
            close = difflib.get_close_matches(name.upper(), names, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(c.lower() for c in close)}?" if close else ""
            raise self.error(f"unknown system register {tok.text!r}{hint} (write an unnamed one as "
                             "s<op0>_<op1>_c<n>_c<m>_<op2>, e.g. s3_0_c15_c2_0)", tok.col)
        return reg.encoding


# --- From source operands to an encoding's fields ---------------------------------

_Encoded = tuple[str, dict[str, int]]  # an op and the values of its encoding's fields


def _imm_at(index: int, imm: bool = True) -> Callable[[Sequence[_Operand]], bool]:
    """Accept the operands when operand ``index`` is an immediate (or, with imm=False, is not)."""

    def accepts(ops: Sequence[_Operand]) -> bool:
        return _is_imm(ops[index]) == imm

    return accepts


def _names_sp(ops: Sequence[_Operand]) -> bool:
    """mov between registers with sp (or wsp) on one side: MOV (to/from SP), an add."""
    if _is_imm(ops[1]):
        return False
    regs = [_register_or_none(op.tokens[0]) for op in ops]
    return any(r is not None and r.kind == "sp" for r in regs)


def _names_no_sp(ops: Sequence[_Operand]) -> bool:
    return not _is_imm(ops[1]) and not _names_sp(ops)


def _is_memory(ops: Sequence[_Operand]) -> bool:
    first = ops[1].tokens[0]
    return first.kind == "punct" and first.text == "["


def _is_label(ops: Sequence[_Operand]) -> bool:
    return not _is_memory(ops)


def _names_psr_field(name: str | None) -> Callable[[Sequence[_Operand]], bool]:
    """Accept msr whose first operand is the PSTATE field ``name`` (None: a system register)."""

    def accepts(ops: Sequence[_Operand]) -> bool:
        first = ops[0].tokens[0]
        spelled = first.text.lower() if first.kind == "ident" else ""
        return (spelled if spelled in ("daifset", "daifclr") else None) == name

    return accepts


def _asm_move_wide(s: _Stmt) -> _Encoded:
    ops = s.operands
    rd = s.reg(ops[0], role="destination")
    bits = 64 if rd.is64 else 32
    imm = s.imm(ops[1], 0, 0xFFFF, f"{s.mnemonic} immediate")
    hw = 0
    if len(ops) == 3:
        kind, amount = s.shift(ops[2], ("lsl",), bits - 16)
        if amount % 16:
            raise s.error(f"{s.mnemonic} shift must be lsl #0, #16"
                          + (", #32 or #48" if bits == 64 else " (w registers)"), ops[2].tokens[1].col)
        hw = amount // 16
    return s.mnemonic, {"sf": rd.is64, "hw": hw, "imm16": imm, "rd": rd.num}


def _movz_movn(value: int, bits: int) -> tuple[str, int, int] | None:
    """(op, hw, imm16) of a single MOVZ or MOVN that makes ``value``, if any."""
    for op, v in (("movz", value), ("movn", ~value & _ones(bits))):
        for hw in range(bits // 16):
            if v & ~(0xFFFF << (16 * hw)) & _ones(bits) == 0:
                return op, hw, (v >> (16 * hw)) & 0xFFFF
    return None


def _asm_mov_immediate(s: _Stmt) -> _Encoded:
    """mov R, #imm: the one MOVZ or MOVN that makes the value, or an error showing how to build it."""
    ops = s.operands
    rd = s.reg(ops[0], sp=True, role="destination")
    if rd.kind == "sp":
        raise s.error("mov #imm cannot write sp; load the value into an x register first", rd.col)
    bits = 64 if rd.is64 else 32
    value = s.imm(ops[1], -(1 << (bits - 1)), _ones(bits), f"{bits}-bit mov immediate")
    value &= _ones(bits)
    found = _movz_movn(value, bits)
    if found is None:
        r = rd.name
        steps = [f"movz {r}, #{value & 0xFFFF:#x}"]
        steps += [f"movk {r}, #{(value >> sh) & 0xFFFF:#x}, lsl #{sh}"
                  for sh in range(16, bits, 16) if (value >> sh) & 0xFFFF]
        alt = ""
        if encode_bitmask(value, bits):
            alt = f" (or orr {r}, {r[0]}zr, #{value:#x}, a bitmask immediate)"
        raise s.error(f"{value:#x} cannot be made by one movz or movn; build it with "
                      f"{'; '.join(steps)}{alt}", ops[1].col)
    op, hw, imm16 = found
    return op, {"sf": rd.is64, "hw": hw, "imm16": imm16, "rd": rd.num}


def _asm_mov_sp(s: _Stmt) -> _Encoded:
    """mov to or from sp: add Rd, Rn, #0 (orr cannot name sp)."""
    ops = s.operands
    rd = s.reg(ops[0], sp=True, role="destination")
    rm = s.reg(ops[1], sp=True, same_as=rd, role="source")
    if rd.kind == "zr" or rm.kind == "zr":
        bad = rd if rd.kind == "zr" else rm
        raise s.error(f"mov between sp and {bad.name} cannot be encoded (both are register 31)", bad.col)
    return "add_imm", {"sf": rd.is64, "sh": 0, "imm12": 0, "rn": rm.num, "rd": rd.num}


def _asm_mov_register(s: _Stmt) -> _Encoded:
    ops = s.operands
    rd = s.reg(ops[0], sp=True, role="destination")
    rm = s.reg(ops[1], sp=True, same_as=rd, role="source")
    return "orr_reg", {"sf": rd.is64, "shift": 0, "rm": rm.num, "imm6": 0, "rn": 31, "rd": rd.num}


def _asm_add_sub_immediate(s: _Stmt) -> _Encoded:
    """add/sub R|sp, R|sp, #imm: 0..4095, optionally lsl #12; a larger multiple of 4096 picks lsl #12."""
    ops = s.operands
    rd = s.reg(ops[0], sp=True, zr=False, role="destination")
    rn = s.reg(ops[1], sp=True, zr=False, same_as=rd, role="first source")
    value, col = s.number(ops[2])
    if value < 0:
        other = "add" if s.mnemonic == "sub" else "sub"
        raise s.error(f"immediate {value} is negative: {s.mnemonic} takes 0 to 4095; use "
                      f"{other} {rd.name}, {rn.name}, #{-value}", col)
    sh = 0
    if len(ops) == 4:
        _, amount = s.shift(ops[3], ("lsl",), 12)
        if amount not in (0, 12):
            raise s.error("add/sub immediate shift must be lsl #0 or lsl #12", ops[3].tokens[1].col)
        sh = amount // 12
        s.imm(ops[2], 0, 4095, "add/sub immediate")
    elif value > 4095 and value % 4096 == 0 and value >> 12 <= 4095:
        sh, value = 1, value >> 12
    elif value > 4095:
        raise s.error(f"add/sub immediate {value} out of range: use 0 to 4095, or a multiple of 4096 "
                      f"up to {4095 << 12:#x} (encoded with lsl #12)", col)
    return f"{s.mnemonic}_imm", {"sf": rd.is64, "sh": sh, "imm12": value, "rn": rn.num, "rd": rd.num}


def _asm_shifted_register(s: _Stmt) -> _Encoded:
    """add/sub/orr R, R, R[, shift #n]; only orr may rotate (ror)."""
    ops = s.operands
    rd = s.reg(ops[0], role="destination")
    rn = s.reg(ops[1], same_as=rd, role="first source")
    rm = s.reg(ops[2], same_as=rd, role="second source")
    kind, amount = "lsl", 0
    if len(ops) == 4:
        allowed = _SHIFT_NAMES if s.mnemonic == "orr" else _SHIFT_NAMES[:3]
        kind, amount = s.shift(ops[3], allowed, 63 if rd.is64 else 31)
    return f"{s.mnemonic}_reg", {"sf": rd.is64, "shift": _SHIFT_NAMES.index(kind), "rm": rm.num, "imm6": amount,
                                 "rn": rn.num, "rd": rd.num}


def _asm_logical_immediate(s: _Stmt) -> _Encoded:
    ops = s.operands
    rd = s.reg(ops[0], sp=True, role="destination")
    rn = s.reg(ops[1], same_as=rd, role="source")
    bits = 64 if rd.is64 else 32
    value, col = s.number(ops[2])
    if not -(1 << (bits - 1)) <= value <= _ones(bits):
        raise s.error(f"orr immediate {value} out of range for a {bits}-bit register", col)
    enc = encode_bitmask(value, bits)
    if enc is None:
        raise s.error(f"{value & _ones(bits):#x} is not a bitmask immediate: orr takes a run of ones, "
                      "rotated, repeated in elements of 2, 4, 8, 16, 32 or 64 bits (not 0 or all "
                      "ones); use mov/movk into a register and orr the register", col)
    n, immr, imms = enc
    return "orr_imm", {"sf": rd.is64, "n": n, "immr": immr, "imms": imms, "rn": rn.num, "rd": rd.num}


def _asm_adr(s: _Stmt) -> _Encoded:
    ops = s.operands
    rd = s.reg(ops[0], w=False, role="destination")
    address, col = s.target(ops[1])
    offset = address - s.pc
    if not -(1 << 20) <= offset < (1 << 20):
        raise s.error(f"adr target {address:#x} out of range: it is {offset:+#x} bytes away and adr reaches "
                      "-0x100000 to +0xfffff", col)
    offset &= _ones(21)
    return "adr", {"immlo": offset & 3, "immhi": offset >> 2, "rd": rd.num}


def _asm_unsigned_offset(s: _Stmt) -> _Encoded:
    """ldr/str R, [X|sp{, #off}]: off a multiple of the access size, up to 4095 of them."""
    ops = s.operands
    rt = s.reg(ops[0], role="transfer register")
    size = 8 if rt.is64 else 4
    first = ops[1].tokens[0]
    if not (first.kind == "punct" and first.text == "["):  # only str gets here: ldr R, T is a literal
        raise s.error(f"str needs a memory operand such as [x1, #8], got {first.text!r}", first.col)
    toks = list(ops[1].tokens)
    if toks[-1].text == "!":
        raise s.error("pre-indexed addressing ([xn, #imm]!) is not supported; use [xn, #imm]", toks[-1].col)
    if toks[-1].text != "]":
        raise s.error("missing ']' to close the memory operand", toks[-1].end)
    inner = toks[1:-1]
    if not inner:
        raise s.error("missing base register inside [ ]", toks[-1].col)
    base = s.reg(_Operand((inner[0],)), sp=True, zr=False, w=False, role="base register")
    offset = 0
    if len(inner) > 1:
        if inner[1].text != ",":
            raise s.error(f"expected ',' or ']' after {inner[0].text}, got {inner[1].text!r}", inner[1].col)
        if len(inner) == 2:
            raise s.error("missing offset after ','", inner[1].end)
        if _register_or_none(inner[2]) is not None:
            raise s.error("register offsets are not supported; use [xn] or [xn, #imm]", inner[2].col)
        offset, col = s.number(_Operand(tuple(inner[2:])))
        limit = 4095 * size
        if not 0 <= offset <= limit or offset % size:
            raise s.error(f"{s.mnemonic} offset {offset} out of range or misaligned: {rt.name} accesses "
                          f"take 0 to {limit} in steps of {size}", col)
    return s.mnemonic, {"x": rt.is64, "imm12": offset // size, "rn": base.num, "rt": rt.num}


def _asm_literal(s: _Stmt) -> _Encoded:
    ops = s.operands
    rt = s.reg(ops[0], role="transfer register")
    return "ldr_lit", {"x": rt.is64, "imm19": s.offset(ops[1], 19, 4, "ldr literal"), "rt": rt.num}


def _sysreg_fields(enc: Encoding) -> dict[str, int]:
    return {"o0": enc.op0 & 1, "op1": enc.op1, "crn": enc.crn, "crm": enc.crm, "op2": enc.op2}


def _asm_msr(s: _Stmt) -> _Encoded:
    ops = s.operands
    enc = s.sysreg(ops[0])
    if _is_imm(ops[1]):
        raise s.error("msr to a system register takes an x register, not an immediate; put the value in "
                      "a register first (mov x0, #1)", ops[1].col)
    rt = s.reg(ops[1], w=False, role="source")
    return "msr", _sysreg_fields(enc) | {"rt": rt.num}


def _asm_mrs(s: _Stmt) -> _Encoded:
    ops = s.operands
    rt = s.reg(ops[0], w=False, role="destination")
    return "mrs", _sysreg_fields(s.sysreg(ops[1])) | {"rt": rt.num}


def _asm_daif(s: _Stmt) -> _Encoded:
    """msr daifset|daifclr, #imm4 (MSR (immediate) with the D, A, I, F mask bits)."""
    ops = s.operands
    name = ops[0].tokens[0].text.lower()
    if len(ops[0].tokens) > 1:
        raise s.error(f"unexpected {ops[0].tokens[1].text!r}", ops[0].tokens[1].col)
    if not _is_imm(ops[1]):
        raise s.error(f"msr {name} takes an immediate #0 to #15", ops[1].col)
    return f"msr_{name}", {"crm": s.imm(ops[1], 0, 15, f"{name} immediate")}


def _asm_bare(s: _Stmt) -> _Encoded:
    return s.mnemonic, {}


def _asm_isb(s: _Stmt) -> _Encoded:
    ops = s.operands
    if ops and (len(ops[0].tokens) != 1 or ops[0].tokens[0].text.lower() != "sy"):
        raise s.error("isb takes no option other than sy", ops[0].col)
    return "isb", {}


def _asm_imm16(s: _Stmt) -> _Encoded:
    return s.mnemonic, {"imm16": s.imm(s.operands[0], 0, 0xFFFF, f"{s.mnemonic} immediate")}


def _asm_ret(s: _Stmt) -> _Encoded:
    ops = s.operands
    rn = s.reg(ops[0], w=False, role="return address register").num if ops else 30
    return "ret", {"rn": rn}


def _asm_branch(s: _Stmt) -> _Encoded:
    return s.mnemonic, {"imm26": s.offset(s.operands[0], 26, 4, s.mnemonic)}


def _asm_b_cond(s: _Stmt) -> _Encoded:
    cond = _COND_BY_NAME[s.mnemonic[2:]]
    return "b_cond", {"imm19": s.offset(s.operands[0], 19, 4, s.mnemonic), "cond": cond}


def _asm_compare_branch(s: _Stmt) -> _Encoded:
    ops = s.operands
    rt = s.reg(ops[0], role="tested register")
    return s.mnemonic, {"sf": rt.is64, "imm19": s.offset(ops[1], 19, 4, s.mnemonic), "rt": rt.num}


# --- The table ----------------------------------------------------------------------
#
# One row per decode op. Encodings: Arm ARM (DDI 0487) C4.1, "A64 instruction
# set encoding"; each instruction's page in C6.2 gives its aliases and when
# each alias is the preferred disassembly. The order of the rows does not
# matter to the decoder (a test checks that no word has the fixed bits of two
# rows); it is the order of the documentation tables and of each mnemonic's
# usage text.

_SHIFTED = "n 0..63 (w: 0..31); no sp"
_ARITH_IMM = "imm 0..4095 (or a multiple of 4096 up to 4095 << 12)"
_WIDE = "imm16 0..65535; s 0/16/32/48 (w: 0/16)"
_OFFSET = "off 0..32760 step 8 (x), 0..16380 step 4 (w)"
_SYSREG = "SYSREG: any name in REGISTERS (any case) or ``s<op0>_<op1>_c<n>_c<m>_<op2>``, op0 2 or 3"
_DAIF = "imm 0..15 (D A I F mask bits)"
_IMM16 = "imm 0..65535"
_NEAR = "±1 MiB, multiple of 4"
_FAR = "±128 MiB, multiple of 4"

FORMS: tuple[Form, ...] = (
    Form("orr_reg", "sf:1 01 01010 shift:2 0 rm:5 imm6:6 rn:5 rd:5", _logical_shifted_register,
         "Rd = Rn OR (Rm shifted by imm6)",
         Syntax("orr", "orr R, R, R[, lsl|lsr|asr|ror #n]", _show_shifted_register, _asm_shifted_register, (3, 4),
                accepts=_imm_at(2, False), usage="orr xd, xn, xm[, lsl #n]", note=_SHIFTED),
         aliases=(Syntax("mov", "mov R, R", _show_mov_register, _asm_mov_register, (2, 2), accepts=_names_no_sp,
                         usage="mov xd, xn", note="alias of ``orr Rd, zr, Rm``"),)),
    Form("orr_imm", "sf:1 01 100100 n:1 immr:6 imms:6 rn:5 rd:5", _logical_immediate,
         "Rd = Rn OR a logical immediate",
         Syntax("orr", "orr R|sp, R, #bitmask", _show_logical_immediate, _asm_logical_immediate, (3, 3),
                accepts=_imm_at(2), usage="orr xd, xn, #bitmask",
                note="bitmask: a rotated run of ones, repeated in elements of 2, 4, 8, 16, 32 or 64 bits"),
         sp=("rd",)),
    Form("add_imm", "sf:1 0 0 100010 sh:1 imm12:12 rn:5 rd:5", _add_sub_immediate,
         "Rd = Rn + imm12, shifted left by 0 or 12",
         Syntax("add", "add R|sp, R|sp, #imm[, lsl #12]", _show_add_sub_immediate, _asm_add_sub_immediate, (3, 4),
                accepts=_imm_at(2), usage="add xd, xn, #imm[, lsl #12]", note=_ARITH_IMM),
         aliases=(Syntax("mov", "mov X|sp, X|sp", _show_mov_sp, _asm_mov_sp, (2, 2), accepts=_names_sp,
                         note="one side sp; alias of ``add Rd, Rn, #0``"),),
         sp=("rd", "rn")),
    Form("sub_imm", "sf:1 1 0 100010 sh:1 imm12:12 rn:5 rd:5", _add_sub_immediate,
         "Rd = Rn - imm12, shifted left by 0 or 12",
         Syntax("sub", "sub R|sp, R|sp, #imm[, lsl #12]", _show_add_sub_immediate, _asm_add_sub_immediate, (3, 4),
                accepts=_imm_at(2), usage="sub xd, xn, #imm[, lsl #12]", note=_ARITH_IMM),
         sp=("rd", "rn")),
    Form("add_reg", "sf:1 0 0 01011 shift:2 0 rm:5 imm6:6 rn:5 rd:5", _add_sub_shifted_register,
         "Rd = Rn + (Rm shifted by imm6)",
         Syntax("add", "add R, R, R[, lsl|lsr|asr #n]", _show_shifted_register, _asm_shifted_register, (3, 4),
                accepts=_imm_at(2, False), usage="add xd, xn, xm[, lsl #n]", note=_SHIFTED)),
    Form("sub_reg", "sf:1 1 0 01011 shift:2 0 rm:5 imm6:6 rn:5 rd:5", _add_sub_shifted_register,
         "Rd = Rn - (Rm shifted by imm6)",
         Syntax("sub", "sub R, R, R[, lsl|lsr|asr #n]", _show_shifted_register, _asm_shifted_register, (3, 4),
                accepts=_imm_at(2, False), usage="sub xd, xn, xm[, lsl #n]", note=_SHIFTED)),
    Form("movz", "sf:1 10 100101 hw:2 imm16:16 rd:5", _wide_immediate,
         "Rd = imm16 << 16 * hw, the other bits zero",
         Syntax("movz", "movz R, #imm16[, lsl #s]", _show_move_wide, _asm_move_wide, (2, 3),
                usage="movz xd, #imm16[, lsl #16]", note=_WIDE),
         aliases=(Syntax("mov", "mov R, #imm", _show_mov_wide, _asm_mov_immediate, (2, 2), accepts=_imm_at(1),
                         usage="mov xd, #imm", note="alias of movz or movn, whichever makes the value; a value "
                         "neither makes is an error that shows the movz/movk lines"),)),
    Form("movn", "sf:1 00 100101 hw:2 imm16:16 rd:5", _wide_immediate,
         "Rd = NOT(imm16 << 16 * hw)",
         Syntax("movn", "movn R, #imm16[, lsl #s]", _show_move_wide, _asm_move_wide, (2, 3),
                usage="movn xd, #imm16[, lsl #16]", note=_WIDE),
         aliases=(Syntax("mov", "mov R, #imm", _show_mov_wide, note="alias of movn (assembled by the row above)"),)),
    Form("movk", "sf:1 11 100101 hw:2 imm16:16 rd:5", _wide_immediate,
         "bits 16 * hw + 15 .. 16 * hw of Rd = imm16, the other bits kept",
         Syntax("movk", "movk R, #imm16[, lsl #s]", _show_move_wide, _asm_move_wide, (2, 3),
                usage="movk xd, #imm16[, lsl #16]", note=_WIDE)),
    Form("adr", "0 immlo:2 10000 immhi:19 rd:5", _adr_offset,
         "Rd = the address of the instruction + offset",
         Syntax("adr", "adr X, T", _show_adr, _asm_adr, (2, 2), usage="adr xd, label",
                note="-1 MiB .. +1 MiB - 1, any byte")),
    Form("ldr", "1 x:1 111 0 01 01 imm12:12 rn:5 rt:5", _unsigned_offset,
         "load Rt from Rn + imm12 * the access size",
         Syntax("ldr", "ldr R, [X|sp{, #off}]", _show_unsigned_offset, _asm_unsigned_offset, (2, 2),
                accepts=_is_memory, usage="ldr xt, [xn, #off]", note=_OFFSET),
         sp=("rn",)),
    Form("ldr_lit", "0 x:1 011 0 00 imm19:19 rt:5", _literal,
         "load Rt from the address of the instruction + offset",
         Syntax("ldr", "ldr R, T", _show_register_and_target, _asm_literal, (2, 2), accepts=_is_label,
                usage="ldr xt, label", note="literal load, " + _NEAR)),
    Form("str", "1 x:1 111 0 01 00 imm12:12 rn:5 rt:5", _unsigned_offset,
         "store Rt to Rn + imm12 * the access size",
         Syntax("str", "str R, [X|sp{, #off}]", _show_unsigned_offset, _asm_unsigned_offset, (2, 2),
                usage="str xt, [xn, #off]", note=_OFFSET),
         sp=("rn",)),
    Form("msr", "1101010100 0 1 o0:1 op1:3 crn:4 crm:4 op2:3 rt:5", _system_register,
         "write Xt to the system register (2 + o0, op1, CRn, CRm, op2)",
         Syntax("msr", "msr SYSREG, X", _show_msr, _asm_msr, (2, 2), accepts=_names_psr_field(None),
                usage="msr oslar_el1, x0", note=_SYSREG)),
    Form("msr_daifset", "1101010100 0 00 011 0100 crm:4 110 11111", _daif_mask,
         "mask the exceptions whose PSTATE.{D, A, I, F} bits are set in CRm",
         Syntax("msr", "msr daifset, #imm4", _show_daif, _asm_daif, (2, 2), accepts=_names_psr_field("daifset"),
                usage="msr daifset, #imm4", note=_DAIF)),
    Form("msr_daifclr", "1101010100 0 00 011 0100 crm:4 111 11111", _daif_mask,
         "unmask the exceptions whose PSTATE.{D, A, I, F} bits are set in CRm",
         Syntax("msr", "msr daifclr, #imm4", _show_daif, _asm_daif, (2, 2), accepts=_names_psr_field("daifclr"),
                note=_DAIF)),
    Form("mrs", "1101010100 1 1 o0:1 op1:3 crn:4 crm:4 op2:3 rt:5", _system_register_read,
         "read the system register (2 + o0, op1, CRn, CRm, op2) into Xt",
         Syntax("mrs", "mrs X, SYSREG", _show_mrs, _asm_mrs, (2, 2), usage="mrs x0, oslsr_el1", note=_SYSREG)),
    Form("isb", "1101010100 0 00 011 0011 1111 110 11111", _direct_fields,
         "instruction synchronization barrier",
         Syntax("isb", "isb", _show_bare, _asm_isb, (0, 1), usage="isb", note="``isb sy`` is accepted too")),
    Form("nop", "1101010100 0 00 011 0010 0000 000 11111", _direct_fields, "no operation",
         Syntax("nop", "nop", _show_bare, _asm_bare, usage="nop")),
    Form("eret", "1101011 0100 11111 0000 0 0 11111 00000", _direct_fields,
         "exception return: pc = ELR, PSTATE = SPSR of the current EL",
         Syntax("eret", "eret", _show_bare, _asm_bare, usage="eret")),
    Form("brk", "11010100 001 imm16:16 000 00", _imm16, "breakpoint exception, with a 16-bit comment",
         Syntax("brk", "brk #imm16", _show_imm, _asm_imm16, (1, 1), usage="brk #imm16", note=_IMM16)),
    Form("hvc", "11010100 000 imm16:16 000 10", _imm16, "hypervisor call (to EL2)",
         Syntax("hvc", "hvc #imm16", _show_imm, _asm_imm16, (1, 1), usage="hvc #imm16", note=_IMM16)),
    Form("svc", "11010100 000 imm16:16 000 01", _imm16, "supervisor call (to EL1)",
         Syntax("svc", "svc #imm16", _show_imm, _asm_imm16, (1, 1), usage="svc #imm16", note=_IMM16)),
    Form("udf", "0000000000000000 imm16:16", _imm16, "permanently undefined",
         Syntax("udf", "udf #imm16", _show_imm, _asm_imm16, (1, 1), usage="udf #imm16", note=_IMM16)),
    Form("b", "0 00101 imm26:26", _branch26, "branch to the address of the instruction + offset",
         Syntax("b", "b T", _show_target, _asm_branch, (1, 1), usage="b label", note=_FAR)),
    Form("bl", "1 00101 imm26:26", _branch26, "branch with link: x30 = the address of the next instruction",
         Syntax("bl", "bl T", _show_target, _asm_branch, (1, 1), usage="bl label", note=_FAR)),
    Form("b_cond", "01010100 imm19:19 0 cond:4", _branch19, "branch if the condition holds on NZCV",
         Syntax("b.<cond>", "b.<cond> T", _show_b_cond, _asm_b_cond, (1, 1), usage="b.eq label",
                note=_NEAR + "; eq ne cs/hs cc/lo mi pl vs vc hi ls ge lt gt le al nv")),
    Form("cbz", "sf:1 011010 0 imm19:19 rt:5", _branch19, "branch if Rt is zero",
         Syntax("cbz", "cbz R, T", _show_register_and_target, _asm_compare_branch, (2, 2), usage="cbz xt, label",
                note=_NEAR)),
    Form("cbnz", "sf:1 011010 1 imm19:19 rt:5", _branch19, "branch if Rt is not zero",
         Syntax("cbnz", "cbnz R, T", _show_register_and_target, _asm_compare_branch, (2, 2),
                usage="cbnz xt, label", note=_NEAR)),
    Form("ret", "1101011 0 0 10 11111 0000 0 0 rn:5 00000", _direct_fields, "return: branch to Xn",
         Syntax("ret", "ret [X]", _show_ret, _asm_ret, (0, 1), usage="ret [xn]", note="default x30")),
)
"""Every instruction form of the subset; the rest of this module is derived from it."""


# --- Read off the table -------------------------------------------------------------

_FORM_BY_OP: Mapping[str, Form] = MappingProxyType({form.op: form for form in FORMS})

OPS = frozenset(_FORM_BY_OP) | {"unknown"}
"""Every value :attr:`Insn.op` can take."""

SP_OPERANDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {form.op: frozenset(form.sp) for form in FORMS if form.sp}
)
"""For each op, the register fields in which 31 means SP; in every other field it means xzr/wzr."""


def _assembler_syntaxes() -> dict[str, tuple[Syntax, ...]]:
    """For each mnemonic, the syntaxes that assemble, in table order."""
    out: dict[str, list[Syntax]] = {}
    for form in FORMS:
        for syntax in form.syntaxes:
            if syntax.parse is not None:
                for spelling in syntax.spellings:
                    out.setdefault(spelling, []).append(syntax)
    return {mnemonic: tuple(syntaxes) for mnemonic, syntaxes in out.items()}


_SYNTAXES = _assembler_syntaxes()
_DIRECTIVES = (".word", ".inst")  # data, not instructions: each operand is emitted as a word
_USAGE = {mnemonic: " | ".join(s.usage for s in syntaxes if s.usage) for mnemonic, syntaxes in _SYNTAXES.items()}
_USAGE |= {name: f"{name} 0x12345678[, ...]" for name in _DIRECTIVES}
_MNEMONICS = sorted(set(_SYNTAXES) | set(_DIRECTIVES))


def _rst_table(header: tuple[str, str, str], rows: list[tuple[str, str, str]], width: int = 116) -> str:
    """A reStructuredText simple table; the last column wraps onto continuation lines."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    last = width - sum(w + 2 for w in widths)
    rule = "  ".join("=" * w for w in [*widths, last])
    lines = [rule, "  ".join(h.ljust(w) for h, w in zip(header, [*widths, last], strict=True)).rstrip(), rule]
    for row in rows:
        wrapped = textwrap.wrap(row[-1], last) or [""]
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + wrapped[0])
        lines += [" " * (sum(w + 2 for w in widths)) + more for more in wrapped[1:]]
    lines.append(rule)
    return "\n".join(line.rstrip() for line in lines)


def syntax_table() -> str:
    """The module docstring's table of source forms, from :data:`FORMS`."""
    rows: list[tuple[str, str, str]] = []
    for form in FORMS:
        sp = f"{', '.join(form.sp)}: 31 = SP" if form.sp else ""
        for syntax in form.syntaxes:
            meaning = form.doc if syntax is form.syntax else ""
            rows.append((f"``{syntax.source}``", form.op, "; ".join(p for p in (meaning, syntax.note, sp) if p)))
    rows.append(("``.word imm32[, imm32 ...]`` (``.inst``)", "(any)", "emits the words as they are"))
    return _rst_table(("Source form", "decode op", "Meaning; range; register 31"), rows)


# --- Decoding and disassembly -------------------------------------------------------


def decode(word: int) -> Insn:
    """Split a 32-bit A64 word into fields; words outside the subset give op "unknown"."""
    if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= MASK32:
        return Insn("unknown", word if isinstance(word, int) and not isinstance(word, bool) else 0)
    for form in FORMS:
        if form.matches(word):
            return form.decode(word)
    return Insn("unknown", word)


def disassemble(word: int, pc: int = 0) -> str:
    """Canonical text for ``word`` located at address ``pc``.

    Uses the aliases the Arm ARM prefers (``mov``), absolute addresses for
    pc-relative targets and ``.inst 0x........`` for words outside the subset.
    """
    insn = decode(word)
    if insn.op == "unknown":
        return f".inst {insn.word & MASK32:#010x}"
    return _FORM_BY_OP[insn.op].show(insn, pc)


# --- Assembly -----------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    """Assembled machine code: ``words[i]`` lives at ``base + 4 * i``."""

    base: int
    words: tuple[int, ...]
    labels: Mapping[str, int] = field(hash=False)
    lines: tuple[int, ...]
    text: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.words)

    @property
    def end(self) -> int:
        """The address just past the last word."""
        return self.base + 4 * len(self.words)

    def word_at(self, address: int) -> int | None:
        """The word at ``address``, or None outside the program or when misaligned."""
        index, rem = divmod(address - self.base, 4)
        if rem or not 0 <= index < len(self.words):
            return None
        return self.words[index]

    def disassembly(self) -> str:
        """A listing: address, word, disassembly (with label names) and the source line."""
        by_address: dict[int, list[str]] = {}
        for name, address in self.labels.items():
            by_address.setdefault(address, []).append(name)
        out: list[str] = []
        for i, word in enumerate(self.words):
            pc = self.base + 4 * i
            out += [f"{name}:" for name in by_address.get(pc, ())]
            text = disassemble(word, pc)
            insn = decode(word)
            if insn.offset is not None and insn.target_of(pc) in by_address:
                text += f" <{by_address[insn.target_of(pc)][0]}>"
            out.append(f"  {pc:#010x}:  {word:08x}  {text:<36}// {self.lines[i]}: {self.text[i]}".rstrip())
        out += [f"{name}:" for name in by_address.get(self.end, ())]
        return "\n".join(out)




def assemble(source: str, base: int = 0x80000) -> Program:
    """Assemble ``source`` into a :class:`Program` loaded at ``base``.

    Every problem raises :class:`~kvmdbg.errors.AsmError` naming the line and
    column (1-based) of the offending token.
    """
    if not isinstance(source, str):
        raise AsmTypeError(f"assembly source must be a str, not {type(source).__name__}")
    if isinstance(base, bool) or not isinstance(base, int):
        raise AsmTypeError(f"base address must be an int, not {type(base).__name__} ({base!r:.40})")
    if not 0 <= base < ADDRESS_LIMIT or base % 4:
        raise AsmError(f"base address {base:#x} must be a multiple of 4 from 0 to {ADDRESS_LIMIT - 4:#x}")
    stmts, label_addrs = _statements(source, base)
    labels = MappingProxyType(label_addrs)
    words: list[int] = []
    lines: list[int] = []
    texts: list[str] = []
    for stmt in stmts:
        stmt.labels = labels
        line = stmt.line
        source_text = line.text[stmt.mnemonic_tok.col - 1:].split("//")[0].split(";")[0].strip()
        for word in _encode(stmt):
            words.append(word)
            lines.append(line.number)
            texts.append(source_text)
    return Program(base, tuple(words), labels, tuple(lines), tuple(texts))


def _statements(source: str, base: int) -> tuple[list[_Stmt], dict[str, int]]:
    """Pass 1: split ``source`` into statements, give each an address and collect the labels."""
    stmts: list[_Stmt] = []
    label_addrs: dict[str, int] = {}
    pc = base
    for number, raw in enumerate(source.split("\n"), start=1):
        line = _Line(number, raw.rstrip("\r"))
        toks = line.tokens
        i = 0
        while i + 1 < len(toks) and toks[i].kind == "ident" and toks[i + 1].text == ":":
            name = toks[i].text
            if name == "." or _is_register_name(name):
                raise line.error(f"{name!r} cannot be a label name", toks[i].col)
            if name in label_addrs:
                raise line.error(f"duplicate label {name!r}: it is already defined at {label_addrs[name]:#x}",
                                 toks[i].col)
            label_addrs[name] = pc
            i += 2
        if i == len(toks):
            continue
        head = toks[i]
        _check_mnemonic(line, head)
        operands = _split_operands(line, toks[i + 1:])
        size = 4 * max(1, len(operands)) if head.text.lower() in _DIRECTIVES else 4
        if pc + size > ADDRESS_LIMIT:
            raise line.error(f"program runs past the end of the {ADDRESS_LIMIT:#x}-byte address space",
                             head.col)
        stmts.append(_Stmt(line, head, operands, pc))
        pc += size
    return stmts, label_addrs


def _check_mnemonic(line: _Line, head: _Tok) -> None:
    if head.kind != "ident":
        raise line.error(f"expected an instruction or label, got {head.text!r}", head.col)
    mnemonic = head.text.lower()
    if mnemonic in _SYNTAXES or mnemonic in _DIRECTIVES:
        return
    if mnemonic.startswith("b.") and len(mnemonic) > 2:
        raise line.error(f"unknown condition {head.text[2:]!r} in {head.text}; conditions are "
                         + " ".join(sorted(_COND_BY_NAME)), head.col + 2)
    close = difflib.get_close_matches(mnemonic, _MNEMONICS, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise line.error(f"unknown instruction {head.text!r}{hint}", head.col)


def _encode(s: _Stmt) -> list[int]:
    """Pass 2: the words of one statement (labels known)."""
    if s.mnemonic in _DIRECTIVES:
        ops = s.count(1, 1 << 30)
        return [s.imm(op, -(1 << 31), MASK32, f"{s.mnemonic} value") & MASK32 for op in ops]
    syntaxes = _SYNTAXES[s.mnemonic]
    ops = s.count(min(x.count[0] for x in syntaxes), max(x.count[1] for x in syntaxes))
    syntax = next(x for x in syntaxes if x.accepts is None or x.accepts(ops))
    s.count(*syntax.count)
    assert syntax.parse is not None
    op, values = syntax.parse(s)
    return [_FORM_BY_OP[op].pack(values)]
