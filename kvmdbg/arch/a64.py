"""A small AArch64 (A64) assembler, disassembler and decoder.

Guest programs in kvmdbg are written in a tiny subset of A64 assembly. This
module turns that text into the real 32-bit instruction words an Arm CPU would
fetch (:func:`assemble`), turns words back into text (:func:`disassemble`) and
splits words into fields for the instruction executor (:func:`decode`). The
encodings are those of the Arm Architecture Reference Manual (DDI 0487),
section C4 "A64 Instruction Set Encoding"; the test suite checks every form
against the Capstone disassembler.

The supported subset
====================

``X`` is an x register, ``W`` a w register, ``R`` either (all registers of one
instruction must have the same width). ``T`` is a branch target: a label, an
absolute address (``0x80010``, ``#0x80010``) or an offset from the
instruction itself (``.``, ``.+8``, ``.-0x10``). The last column says what
register number 31 means in each register field of :class:`Insn`; anywhere
it is not listed as SP it is the zero register (xzr/wzr).

=========================================  ===========  ==============================================
Source form                                decode op    Notes (range; register 31)
=========================================  ===========  ==============================================
``mov R, R``                               orr_reg      alias of ``orr Rd, zr, Rm``
``mov X|sp, X|sp`` (one side sp)           add_imm      alias of ``add Rd, Rn, #0``; rd, rn: 31 = SP
``mov R, #imm``                            movz, movn   only values one MOVZ or MOVN can make;
                                                        otherwise an error shows the movz/movk lines
``movz|movn|movk R, #imm16[, lsl #s]``     movz ...     imm16 0..65535; s 0/16/32/48 (w: 0/16)
``adr X, T``                               adr          -1 MiB .. +1 MiB - 1, any byte
``add|sub R|sp, R|sp, #imm[, lsl #12]``    add_imm ...  imm 0..4095 (or a multiple of 4096 up to
                                                        4095 << 12); rd, rn: 31 = SP
``add|sub R, R, R[, lsl|lsr|asr #n]``      add_reg ...  n 0..63 (w: 0..31); no sp
``orr R, R, R[, lsl|lsr|asr|ror #n]``      orr_reg      n 0..63 (w: 0..31); no sp
``orr R|sp, R, #bitmask``                  orr_imm      a logical (bitmask) immediate; rd: 31 = SP
``ldr|str R, [X|sp{, #off}]``              ldr, str     off 0..32760 step 8 (x), 0..16380 step 4 (w);
                                                        rn: 31 = SP
``ldr R, T``                               ldr_lit      literal load, ±1 MiB, multiple of 4
``msr SYSREG, X`` / ``mrs X, SYSREG``      msr, mrs     every name in REGISTERS (any case) or
                                                        ``s<op0>_<op1>_c<n>_c<m>_<op2>``, op0 2 or 3
``msr daifset|daifclr, #imm4``             msr_daifset  imm 0..15 (D A I F mask bits)
                                           msr_daifclr
``isb`` / ``nop`` / ``eret``               isb ...      no operands (``isb sy`` is accepted too)
``brk|hvc|svc|udf #imm16``                 brk ...      imm 0..65535
``b|bl T``                                 b, bl        ±128 MiB, multiple of 4
``b.<cond> T``                             b_cond       ±1 MiB; eq ne cs/hs cc/lo mi pl vs vc hi ls
                                                        ge lt gt le al nv
``cbz|cbnz R, T``                          cbz, cbnz    ±1 MiB, multiple of 4
``ret [X]``                                ret          default x30
``.word imm32[, imm32 ...]`` (``.inst``)   (any)        emits the words as they are
=========================================  ===========  ==============================================

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from kvmdbg.arch.registers import REGISTERS, Encoding, lookup_encoding
from kvmdbg.errors import AsmError, AsmTypeError

__all__ = [
    "Program",
    "Insn",
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

OPS = frozenset(
    {
        "movz", "movk", "movn", "orr_reg", "orr_imm", "add_imm", "sub_imm", "add_reg", "sub_reg",
        "adr", "ldr", "str", "ldr_lit", "msr", "mrs", "msr_daifset", "msr_daifclr", "isb", "nop",
        "brk", "hvc", "svc", "udf", "b", "bl", "b_cond", "cbz", "cbnz", "ret", "eret", "unknown",
    }
)
"""Every value :attr:`Insn.op` can take."""

SP_OPERANDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "add_imm": frozenset({"rd", "rn"}),
        "sub_imm": frozenset({"rd", "rn"}),
        "orr_imm": frozenset({"rd"}),
        "ldr": frozenset({"rn"}),
        "str": frozenset({"rn"}),
    }
)
"""For each op, the register fields in which 31 means SP; in every other field it means xzr/wzr."""

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


# --- Decoding -------------------------------------------------------------------


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
_FIXED = {0xD503201F: "nop", 0xD5033FDF: "isb", 0xD69F03E0: "eret"}


def decode(word: int) -> Insn:
    """Split a 32-bit A64 word into fields; words outside the subset give op "unknown"."""
    if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= MASK32:
        return Insn("unknown", word if isinstance(word, int) and not isinstance(word, bool) else 0)
    w = word
    rd = w & 0x1F
    rn = (w >> 5) & 0x1F
    rm = (w >> 16) & 0x1F
    sf = bool(w >> 31)
    unknown = Insn("unknown", w)

    if w in _FIXED:
        return Insn(_FIXED[w], w)
    if (w & 0xFFFFF0FF) in (0xD50340DF, 0xD50340FF):
        op = "msr_daifset" if (w & 0xFF) == 0xDF else "msr_daifclr"
        return Insn(op, w, imm=(w >> 8) & 0xF)
    if (w & 0xFFE0001F) == 0xD4200000:
        return Insn("brk", w, imm=(w >> 5) & 0xFFFF)
    if (w & 0xFFE0001F) == 0xD4000002:
        return Insn("hvc", w, imm=(w >> 5) & 0xFFFF)
    if (w & 0xFFE0001F) == 0xD4000001:
        return Insn("svc", w, imm=(w >> 5) & 0xFFFF)
    if (w & 0xFFFF0000) == 0:
        return Insn("udf", w, imm=w & 0xFFFF)
    if (w & 0xFFFFFC1F) == 0xD65F0000:
        return Insn("ret", w, rn=rn)
    if (w & 0xFFF00000) in (0xD5100000, 0xD5300000):
        enc = Encoding(2 | (w >> 19) & 1, (w >> 16) & 7, (w >> 12) & 0xF, (w >> 8) & 0xF, (w >> 5) & 7)
        read = bool(w & (1 << 21))
        return Insn("mrs" if read else "msr", w, rt=rd, sysreg=enc, is_read=read)

    # Data processing, immediate.
    if (w & 0x1F800000) == 0x12800000:  # move wide
        opc = (w >> 29) & 3
        hw = (w >> 21) & 3
        if opc == 1 or (not sf and hw >= 2):
            return unknown
        op = {0: "movn", 2: "movz", 3: "movk"}[opc]
        return Insn(op, w, rd=rd, imm=(w >> 5) & 0xFFFF, shift=hw * 16, sf=sf)
    if (w & 0x3F800000) == 0x11000000:  # add/sub immediate, S = 0
        op = "sub_imm" if w & (1 << 30) else "add_imm"
        sh = 12 if w & (1 << 22) else 0
        return Insn(op, w, rd=rd, rn=rn, imm=(w >> 10) & 0xFFF, shift=sh, sf=sf)
    if (w & 0x7F800000) == 0x32000000:  # orr immediate
        value = decode_bitmask((w >> 22) & 1, (w >> 16) & 0x3F, (w >> 10) & 0x3F, 64 if sf else 32)
        if value is None:
            return unknown
        return Insn("orr_imm", w, rd=rd, rn=rn, imm=value, sf=sf)
    if (w & 0x9F000000) == 0x10000000:  # adr
        offset = _signed(((w >> 5) & 0x7FFFF) << 2 | (w >> 29) & 3, 21)
        return Insn("adr", w, rd=rd, offset=offset)

    # Data processing, register.
    imm6 = (w >> 10) & 0x3F
    stype = (w >> 22) & 3
    if (w & 0x7F200000) == 0x2A000000:  # orr shifted register
        if not sf and imm6 >= 32:
            return unknown
        return Insn("orr_reg", w, rd=rd, rn=rn, rm=rm, shift=imm6, shift_type=_SHIFT_NAMES[stype], sf=sf)
    if (w & 0x3F200000) == 0x0B000000:  # add/sub shifted register, S = 0
        if stype == 3 or (not sf and imm6 >= 32):
            return unknown
        op = "sub_reg" if w & (1 << 30) else "add_reg"
        return Insn(op, w, rd=rd, rn=rn, rm=rm, shift=imm6, shift_type=_SHIFT_NAMES[stype], sf=sf)

    # Loads and stores.
    top = w & 0xFFC00000
    if top in (0xF9400000, 0xF9000000, 0xB9400000, 0xB9000000):
        size = 8 if top & (1 << 30) else 4
        op = "ldr" if top & (1 << 22) else "str"
        return Insn(op, w, rn=rn, rt=rd, imm=((w >> 10) & 0xFFF) * size, size=size, sf=size == 8)
    if (w & 0xBF000000) == 0x18000000:
        size = 8 if w & (1 << 30) else 4
        return Insn("ldr_lit", w, rt=rd, size=size, sf=size == 8, offset=_signed((w >> 5) & 0x7FFFF, 19) * 4)

    # Branches.
    if (w & 0x7C000000) == 0x14000000:
        return Insn("bl" if sf else "b", w, offset=_signed(w & 0x3FFFFFF, 26) * 4)
    if (w & 0xFF000010) == 0x54000000:
        return Insn("b_cond", w, cond=w & 0xF, offset=_signed((w >> 5) & 0x7FFFF, 19) * 4)
    if (w & 0x7E000000) == 0x34000000:
        op = "cbnz" if w & (1 << 24) else "cbz"
        return Insn(op, w, rt=rd, sf=sf, offset=_signed((w >> 5) & 0x7FFFF, 19) * 4)
    return unknown


# --- Disassembly ------------------------------------------------------------------


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


def disassemble(word: int, pc: int = 0) -> str:
    """Canonical text for ``word`` located at address ``pc``.

    Uses the aliases the Arm ARM prefers (``mov``), absolute addresses for
    pc-relative targets and ``.inst 0x........`` for words outside the subset.
    """
    insn = decode(word)
    if insn.op == "unknown":
        shown = word if isinstance(word, int) and not isinstance(word, bool) else 0
        return f".inst {shown & MASK32:#010x}"
    text = _text(insn, pc)
    if insn.op == "orr_imm" and _orr_imm_word(insn) != word:
        # A valid but non-canonical bitmask encoding (immr bits the element
        # size ignores): our text would assemble to a different word.
        return f".inst {word:#010x}  // {text}"
    return text


def _orr_imm_word(insn: Insn) -> int | None:
    enc = encode_bitmask(insn.imm, 64 if insn.sf else 32)
    if enc is None:
        return None
    n, immr, imms = enc
    rn, rd = insn.rn or 0, insn.rd or 0
    return insn.sf << 31 | 0x32000000 | n << 22 | immr << 16 | imms << 10 | rn << 5 | rd


def _text(insn: Insn, pc: int) -> str:
    op = insn.op
    sf = insn.sf
    if op in ("movz", "movn", "movk"):
        rd = _reg(insn.rd, sf)
        bits = 64 if sf else 32
        if op == "movk":
            alias = False
        elif op == "movz":
            alias = not (insn.imm == 0 and insn.shift)
        else:
            alias = not (insn.imm == 0 and insn.shift) and not (not sf and insn.imm == 0xFFFF)
        if alias:
            value = insn.imm << insn.shift
            if op == "movn":
                value = ~value & _ones(bits)
            return f"mov {rd}, {_imm(_signed(value, bits))}"
        suffix = f", lsl {_imm(insn.shift)}" if insn.shift else ""
        return f"{op} {rd}, {_imm(insn.imm)}{suffix}"
    if op in ("add_imm", "sub_imm"):
        rd, rn = _reg(insn.rd, sf, sp=True), _reg(insn.rn, sf, sp=True)
        if op == "add_imm" and insn.imm == 0 and insn.shift == 0 and 31 in (insn.rd, insn.rn):
            return f"mov {rd}, {rn}"
        suffix = ", lsl #12" if insn.shift else ""
        return f"{op[:3]} {rd}, {rn}, {_imm(insn.imm)}{suffix}"
    if op == "orr_imm":
        return f"orr {_reg(insn.rd, sf, sp=True)}, {_reg(insn.rn, sf)}, #{insn.imm:#x}"
    if op in ("orr_reg", "add_reg", "sub_reg"):
        rd, rn, rm = _reg(insn.rd, sf), _reg(insn.rn, sf), _reg(insn.rm, sf)
        suffix = _shift_suffix(insn)
        if op == "orr_reg" and insn.rn == 31 and not suffix:
            return f"mov {rd}, {rm}"
        return f"{op[:3]} {rd}, {rn}, {rm}{suffix}"
    if op == "adr":
        return f"adr {_reg(insn.rd, True)}, {_addr(pc, insn.offset)}"
    if op in ("ldr", "str"):
        mem = _reg(insn.rn, True, sp=True)
        mem = f"[{mem}, {_imm(insn.imm)}]" if insn.imm else f"[{mem}]"
        return f"{op} {_reg(insn.rt, sf)}, {mem}"
    if op == "ldr_lit":
        return f"ldr {_reg(insn.rt, sf)}, {_addr(pc, insn.offset)}"
    if op == "msr":
        return f"msr {insn.sysreg_name}, {_reg(insn.rt, True)}"
    if op == "mrs":
        return f"mrs {_reg(insn.rt, True)}, {insn.sysreg_name}"
    if op in ("msr_daifset", "msr_daifclr"):
        return f"msr {op[4:]}, {_imm(insn.imm)}"
    if op in ("nop", "isb", "eret"):
        return op
    if op in ("brk", "hvc", "svc", "udf"):
        return f"{op} {_imm(insn.imm)}"
    if op == "ret":
        return "ret" if insn.rn == 30 else f"ret {_reg(insn.rn, True)}"
    if op in ("b", "bl"):
        return f"{op} {_addr(pc, insn.offset)}"
    if op == "b_cond":
        return f"b.{insn.cond_name} {_addr(pc, insn.offset)}"
    # cbz / cbnz
    return f"{op} {_reg(insn.rt, sf)}, {_addr(pc, insn.offset)}"


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
        key = "b.cond" if self.mnemonic.startswith("b.") else self.mnemonic
        return _USAGE.get(key, "")

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

    def is_imm(self, op: _Operand) -> bool:
        first = op.tokens[0]
        return first.kind == "num" or (first.kind == "punct" and first.text in "#+-")

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


# --- Encoders -----------------------------------------------------------------------


def _sf(r: _Reg) -> int:
    return 1 << 31 if r.is64 else 0


def _enc_move_wide(s: _Stmt) -> int:
    ops = s.count(2, 3)
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
    opc = {"movn": 0, "movz": 2, "movk": 3}[s.mnemonic]
    return _sf(rd) | opc << 29 | 0x12800000 | hw << 21 | imm << 5 | rd.num


def _movz_movn(value: int, bits: int) -> tuple[int, int, int] | None:
    """(opc, hw, imm16) of a single MOVZ or MOVN that makes ``value``, if any."""
    for opc, v in ((2, value), (0, ~value & _ones(bits))):
        for hw in range(bits // 16):
            if v & ~(0xFFFF << (16 * hw)) & _ones(bits) == 0:
                return opc, hw, (v >> (16 * hw)) & 0xFFFF
    return None


def _enc_mov(s: _Stmt) -> int:
    ops = s.count(2)
    rd = s.reg(ops[0], sp=True, role="destination")
    if s.is_imm(ops[1]):
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
        opc, hw, imm16 = found
        return _sf(rd) | opc << 29 | 0x12800000 | hw << 21 | imm16 << 5 | rd.num
    rm = s.reg(ops[1], sp=True, same_as=rd, role="source")
    if rd.kind == "sp" or rm.kind == "sp":
        if rd.kind == "zr" or rm.kind == "zr":
            bad = rd if rd.kind == "zr" else rm
            raise s.error(f"mov between sp and {bad.name} cannot be encoded (both are register 31)", bad.col)
        return _sf(rd) | 0x11000000 | rm.num << 5 | rd.num
    return _sf(rd) | 0x2A000000 | rm.num << 16 | 31 << 5 | rd.num


def _enc_add_sub(s: _Stmt) -> int:
    ops = s.count(3, 4)
    sub = s.mnemonic == "sub"
    if s.is_imm(ops[2]):
        rd = s.reg(ops[0], sp=True, zr=False, role="destination")
        rn = s.reg(ops[1], sp=True, zr=False, same_as=rd, role="first source")
        value, col = s.number(ops[2])
        if value < 0:
            other = "add" if sub else "sub"
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
        return _sf(rd) | sub << 30 | 0x11000000 | sh << 22 | value << 10 | rn.num << 5 | rd.num
    rd = s.reg(ops[0], role="destination")
    rn = s.reg(ops[1], same_as=rd, role="first source")
    rm = s.reg(ops[2], same_as=rd, role="second source")
    kind, amount = "lsl", 0
    if len(ops) == 4:
        kind, amount = s.shift(ops[3], ("lsl", "lsr", "asr"), 63 if rd.is64 else 31)
    stype = _SHIFT_NAMES.index(kind)
    return (_sf(rd) | sub << 30 | 0x0B000000 | stype << 22 | rm.num << 16 | amount << 10 | rn.num << 5
            | rd.num)


def _enc_orr(s: _Stmt) -> int:
    ops = s.count(3, 4)
    if s.is_imm(ops[2]):
        s.count(3)
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
        return _sf(rd) | 0x32000000 | n << 22 | immr << 16 | imms << 10 | rn.num << 5 | rd.num
    rd = s.reg(ops[0], role="destination")
    rn = s.reg(ops[1], same_as=rd, role="first source")
    rm = s.reg(ops[2], same_as=rd, role="second source")
    kind, amount = "lsl", 0
    if len(ops) == 4:
        kind, amount = s.shift(ops[3], _SHIFT_NAMES, 63 if rd.is64 else 31)
    stype = _SHIFT_NAMES.index(kind)
    return _sf(rd) | 0x2A000000 | stype << 22 | rm.num << 16 | amount << 10 | rn.num << 5 | rd.num


def _enc_adr(s: _Stmt) -> int:
    ops = s.count(2)
    rd = s.reg(ops[0], w=False, role="destination")
    address, col = s.target(ops[1])
    offset = address - s.pc
    if not -(1 << 20) <= offset < (1 << 20):
        raise s.error(f"adr target {address:#x} out of range: it is {offset:+#x} bytes away and adr reaches "
                      "-0x100000 to +0xfffff", col)
    offset &= _ones(21)
    return 0x10000000 | (offset & 3) << 29 | (offset >> 2) << 5 | rd.num


def _enc_ldr_str(s: _Stmt) -> int:
    ops = s.count(2)
    rt = s.reg(ops[0], role="transfer register")
    size = 8 if rt.is64 else 4
    mem = ops[1]
    first = mem.tokens[0]
    if not (first.kind == "punct" and first.text == "["):
        if s.mnemonic == "str":
            raise s.error(f"str needs a memory operand such as [x1, #8], got {first.text!r}", first.col)
        imm19 = s.offset(mem, 19, 4, "ldr literal")
        return (0x58000000 if rt.is64 else 0x18000000) | imm19 << 5 | rt.num
    toks = list(mem.tokens)
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
        off_op = _Operand(tuple(inner[2:]))
        if _register_or_none(inner[2]) is not None:
            raise s.error("register offsets are not supported; use [xn] or [xn, #imm]", inner[2].col)
        offset, col = s.number(off_op)
        limit = 4095 * size
        if not 0 <= offset <= limit or offset % size:
            raise s.error(f"{s.mnemonic} offset {offset} out of range or misaligned: {rt.name} accesses "
                          f"take 0 to {limit} in steps of {size}", col)
    load = 1 << 22 if s.mnemonic == "ldr" else 0
    return (0xF9000000 if rt.is64 else 0xB9000000) | load | (offset // size) << 10 | base.num << 5 | rt.num


def _enc_msr(s: _Stmt) -> int:
    ops = s.count(2)
    first = ops[0].tokens[0]
    if first.kind == "ident" and first.text.lower() in ("daifset", "daifclr"):
        if len(ops[0].tokens) > 1:
            raise s.error(f"unexpected {ops[0].tokens[1].text!r}", ops[0].tokens[1].col)
        if not s.is_imm(ops[1]):
            raise s.error(f"msr {first.text.lower()} takes an immediate #0 to #15", ops[1].col)
        imm = s.imm(ops[1], 0, 15, f"{first.text.lower()} immediate")
        return (0xD50340DF if first.text.lower() == "daifset" else 0xD50340FF) | imm << 8
    enc = s.sysreg(ops[0])
    if s.is_imm(ops[1]):
        raise s.error("msr to a system register takes an x register, not an immediate; put the value in "
                      "a register first (mov x0, #1)", ops[1].col)
    rt = s.reg(ops[1], w=False, role="source")
    return 0xD5000000 | enc.sys_reg | rt.num


def _enc_mrs(s: _Stmt) -> int:
    ops = s.count(2)
    rt = s.reg(ops[0], w=False, role="destination")
    enc = s.sysreg(ops[1])
    return 0xD5200000 | enc.sys_reg | rt.num


def _enc_fixed(word: int) -> Callable[[_Stmt], int]:
    def encode(s: _Stmt) -> int:
        s.count(0)
        return word

    return encode


def _enc_isb(s: _Stmt) -> int:
    ops = s.count(0, 1)
    if ops and (len(ops[0].tokens) != 1 or ops[0].tokens[0].text.lower() != "sy"):
        raise s.error("isb takes no option other than sy", ops[0].col)
    return 0xD5033FDF


def _enc_imm16(base: int) -> Callable[[_Stmt], int]:
    def encode(s: _Stmt) -> int:
        ops = s.count(1)
        return base | s.imm(ops[0], 0, 0xFFFF, f"{s.mnemonic} immediate") << (5 if base else 0)

    return encode


def _enc_ret(s: _Stmt) -> int:
    ops = s.count(0, 1)
    rn = s.reg(ops[0], w=False, role="return address register").num if ops else 30
    return 0xD65F0000 | rn << 5


def _enc_b(s: _Stmt) -> int:
    ops = s.count(1)
    return (0x94000000 if s.mnemonic == "bl" else 0x14000000) | s.offset(ops[0], 26, 4, s.mnemonic)


def _enc_b_cond(s: _Stmt) -> int:
    ops = s.count(1)
    cond = _COND_BY_NAME[s.mnemonic[2:]]
    return 0x54000000 | s.offset(ops[0], 19, 4, s.mnemonic) << 5 | cond


def _enc_cb(s: _Stmt) -> int:
    ops = s.count(2)
    rt = s.reg(ops[0], role="tested register")
    base = 0x35000000 if s.mnemonic == "cbnz" else 0x34000000
    return _sf(rt) | base | s.offset(ops[1], 19, 4, s.mnemonic) << 5 | rt.num


_ENCODERS: dict[str, Callable[[_Stmt], int]] = {
    "mov": _enc_mov,
    "movz": _enc_move_wide,
    "movn": _enc_move_wide,
    "movk": _enc_move_wide,
    "adr": _enc_adr,
    "add": _enc_add_sub,
    "sub": _enc_add_sub,
    "orr": _enc_orr,
    "ldr": _enc_ldr_str,
    "str": _enc_ldr_str,
    "msr": _enc_msr,
    "mrs": _enc_mrs,
    "isb": _enc_isb,
    "nop": _enc_fixed(0xD503201F),
    "eret": _enc_fixed(0xD69F03E0),
    "brk": _enc_imm16(0xD4200000),
    "hvc": _enc_imm16(0xD4000002),
    "svc": _enc_imm16(0xD4000001),
    "udf": _enc_imm16(0),
    "ret": _enc_ret,
    "b": _enc_b,
    "bl": _enc_b,
    "cbz": _enc_cb,
    "cbnz": _enc_cb,
}
_ENCODERS.update({f"b.{c}": _enc_b_cond for c in _COND_BY_NAME})

_USAGE = {
    "mov": "mov xd, xn | mov xd, #imm",
    "movz": "movz xd, #imm16[, lsl #16]",
    "movn": "movn xd, #imm16[, lsl #16]",
    "movk": "movk xd, #imm16[, lsl #16]",
    "adr": "adr xd, label",
    "add": "add xd, xn, #imm[, lsl #12] | add xd, xn, xm[, lsl #n]",
    "sub": "sub xd, xn, #imm[, lsl #12] | sub xd, xn, xm[, lsl #n]",
    "orr": "orr xd, xn, xm[, lsl #n] | orr xd, xn, #bitmask",
    "ldr": "ldr xt, [xn, #off] | ldr xt, label",
    "str": "str xt, [xn, #off]",
    "msr": "msr oslar_el1, x0 | msr daifset, #imm4",
    "mrs": "mrs x0, oslsr_el1",
    "isb": "isb",
    "nop": "nop",
    "eret": "eret",
    "brk": "brk #imm16",
    "hvc": "hvc #imm16",
    "svc": "svc #imm16",
    "udf": "udf #imm16",
    "ret": "ret [xn]",
    "b": "b label",
    "bl": "bl label",
    "b.cond": "b.eq label",
    "cbz": "cbz xt, label",
    "cbnz": "cbnz xt, label",
    ".word": ".word 0x12345678[, ...]",
    ".inst": ".inst 0x12345678[, ...]",
}
_MNEMONICS = sorted(set(_ENCODERS) | {".word", ".inst"})


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

    # Pass 1: split into statements, give each an address, collect labels.
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
        if head.kind != "ident":
            raise line.error(f"expected an instruction or label, got {head.text!r}", head.col)
        mnemonic = head.text.lower()
        if mnemonic not in _ENCODERS and mnemonic not in (".word", ".inst"):
            if mnemonic.startswith("b.") and len(mnemonic) > 2:
                raise line.error(f"unknown condition {head.text[2:]!r} in {head.text}; conditions are "
                                 + " ".join(sorted(_COND_BY_NAME)), head.col + 2)
            close = difflib.get_close_matches(mnemonic, _MNEMONICS, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise line.error(f"unknown instruction {head.text!r}{hint}", head.col)
        operands = _split_operands(line, toks[i + 1:])
        stmt = _Stmt(line, head, operands, pc)
        size = 4 * max(1, len(operands)) if mnemonic in (".word", ".inst") else 4
        if pc + size > ADDRESS_LIMIT:
            raise line.error(f"program runs past the end of the {ADDRESS_LIMIT:#x}-byte address space",
                             head.col)
        pc += size
        stmts.append(stmt)

    # Pass 2: encode.
    labels = MappingProxyType(dict(label_addrs))
    words: list[int] = []
    lines: list[int] = []
    texts: list[str] = []
    for stmt in stmts:
        stmt.labels = labels
        line = stmt.line
        source_text = line.text[stmt.mnemonic_tok.col - 1:].split("//")[0].split(";")[0].strip()
        if stmt.mnemonic in (".word", ".inst"):
            ops = stmt.count(1, 1 << 30)
            emitted = [stmt.imm(op, -(1 << 31), MASK32, f"{stmt.mnemonic} value") & MASK32 for op in ops]
        else:
            emitted = [_ENCODERS[stmt.mnemonic](stmt)]
        for word in emitted:
            words.append(word)
            lines.append(line.number)
            texts.append(source_text)
    return Program(base, tuple(words), labels, tuple(lines), tuple(texts))
