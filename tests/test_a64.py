"""Tests of the A64 assembler, disassembler and decoder in kvmdbg.arch.a64.

Every instruction form is checked against Capstone, an independent decoder:
the word we assemble must mean the same thing to Capstone as our own text
says, our text must assemble back to the same word, and ``decode`` must pull
out the fields the source put in. The forms table (``FORMS``) is checked
against what is derived from it: the ops, the SP fields, the usage text and
the module docstring.
"""

from __future__ import annotations

import random
import re

import capstone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmdbg.arch import a64
from kvmdbg.arch.a64 import (
    CONDITIONS,
    FORMS,
    OPS,
    SP_OPERANDS,
    Insn,
    Program,
    assemble,
    decode,
    decode_bitmask,
    disassemble,
    encode_bitmask,
    syntax_table,
)
from kvmdbg.arch.registers import REGISTERS, Encoding
from kvmdbg.errors import AsmError

BASE = 0x80000
# Far enough from 0 that every branch target in range is a positive address.
HIGH_BASE = 0x1000_0000
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_ARCH = capstone.CS_ARCH_AARCH64 if hasattr(capstone, "CS_ARCH_AARCH64") else capstone.CS_ARCH_ARM64
_CS = capstone.Cs(_ARCH, capstone.CS_MODE_ARM)
_CS.detail = True


# --- Helpers ------------------------------------------------------------------------


def _capstone(word: int, pc: int) -> tuple[str, str, int | None] | None:
    """(mnemonic, operands, system register operand value) as Capstone sees the word."""
    for insn in _CS.disasm(word.to_bytes(4, "little"), pc):
        sysreg = None
        for op in insn.operands:
            if op.type not in (capstone.CS_OP_REG, capstone.CS_OP_IMM, capstone.CS_OP_MEM):
                sysreg = op.imm  # the 16-bit op0:op1:CRn:CRm:op2 of MSR/MRS
        return insn.mnemonic, insn.op_str, sysreg
    return None


def _packed(enc: Encoding) -> int:
    return enc.op0 << 14 | enc.op1 << 11 | enc.crn << 7 | enc.crm << 3 | enc.op2


def _norm(text: str) -> list[object]:
    """Tokens of an instruction with numbers as ints, so 0x10, #16 and 16 compare equal."""
    out: list[object] = []
    pattern = r"-?0x[0-9a-f]+|-?[0-9]+|[a-z_.][a-z0-9_.]*|[\[\]!]"
    for tok in re.findall(pattern, text.lower().replace("#", "")):
        out.append(int(tok, 0) if tok[0].isdigit() or tok[0] == "-" else tok)
    return out


def _capstone_canonical(word: int, pc: int) -> list[object]:
    """Capstone's text, with the aliases our disassembler does not use undone."""
    found = _capstone(word, pc)
    assert found is not None, f"capstone cannot decode {word:#010x}"
    mnemonic, op_str, _ = found
    ops = [o.strip() for o in op_str.split(",")] if op_str else []
    zr = "xzr" if word >> 31 else "wzr"
    if mnemonic == "neg":  # SUB Rd, ZR, Rm{, shift}
        mnemonic, ops = "sub", [ops[0], zr, *ops[1:]]
    if mnemonic == "mov" and (word & 0x7F800000) == 0x32000000:  # ORR Rd, ZR, #bitmask
        value = int(ops[1].lstrip("#"), 0) & ((1 << 64 if word >> 31 else 1 << 32) - 1)  # printed signed
        mnemonic, ops = "orr", [ops[0], zr, hex(value)]
    mnemonic = {"b.cs": "b.hs", "b.cc": "b.lo"}.get(mnemonic, mnemonic)
    return _norm(f"{mnemonic} {', '.join(ops)}")


def _check(source: str, base: int = BASE, **fields: object) -> int:
    """Assemble one instruction, compare with Capstone, round-trip it and check decode()."""
    program = assemble(source, base)
    assert len(program) == 1, source
    word = program.words[0]
    ours = disassemble(word, base)
    found = _capstone(word, base)
    assert found is not None, f"{source!r} -> {word:#010x}, which capstone cannot decode"
    insn = decode(word)
    if insn.sysreg is not None:  # Capstone names registers its own way: compare encodings.
        assert found[0] == insn.op
        assert found[2] == _packed(insn.sysreg), (source, found)
        assert f"x{insn.rt}" in found[1] or (insn.rt == 31 and "xzr" in found[1])
    else:
        assert _norm(ours) == _capstone_canonical(word, base), (source, ours, found)
    assert assemble(ours, base).words == (word,), (source, ours)
    for name, value in fields.items():
        assert getattr(insn, name) == value, (source, name, getattr(insn, name), value)
    assert insn.op in OPS
    return word


def _error(source: str) -> AsmError:
    with pytest.raises(AsmError) as info:
        assemble(source)
    return info.value


regs = st.integers(0, 30)
widths = st.booleans()


def _r(n: int, is64: bool, sp: bool = False) -> str:
    if n == 31:
        return ("sp" if is64 else "wsp") if sp else ("xzr" if is64 else "wzr")
    return f"{'x' if is64 else 'w'}{n}"


def _case(name: str) -> st.SearchStrategy[str]:
    """Random upper/lower case spellings of ``name``."""
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda flips: "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))
    )


# --- Fixed words from the brief ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "word"),
    [
        ("msr oslar_el1, x1", 0xD5101081),
        ("mrs x2, oslsr_el1", 0xD5301182),
        ("brk #0", 0xD4200000),
        ("brk #0x800", 0xD4200000 | 0x800 << 5),
        ("hvc #0", 0xD4000002),
        ("hvc #0xffff", 0xD4000002 | 0xFFFF << 5),
        ("svc #0", 0xD4000001),
        ("nop", 0xD503201F),
        ("isb", 0xD5033FDF),
        ("isb sy", 0xD5033FDF),
        ("msr daifset, #0xf", 0xD50340DF | 0xF << 8),
        ("msr daifclr, #2", 0xD50340FF | 2 << 8),
        ("eret", 0xD69F03E0),
        ("ret", 0xD65F03C0),
        ("ret x1", 0xD65F0020),
        ("udf #0", 0x00000000),
        (".word 0xdeadbeef", 0xDEADBEEF),
        (".inst 0x12345678", 0x12345678),
        (".word -1", 0xFFFFFFFF),
    ],
)
def test_documented_instructions_encode_to_the_documented_words(source: str, word: int) -> None:
    assert assemble(source).words == (word,)


def test_msr_oslar_el1_x1_encodes_to_the_documented_word() -> None:
    assert _check("msr oslar_el1, x1", op="msr", rt=1, is_read=False) == 0xD5101081
    assert disassemble(0xD5101081) == "msr oslar_el1, x1"


def test_mrs_x2_oslsr_el1_encodes_to_the_documented_word() -> None:
    assert _check("mrs x2, oslsr_el1", op="mrs", rt=2, is_read=True) == 0xD5301182
    assert disassemble(0xD5301182) == "mrs x2, oslsr_el1"


def test_fixed_instructions_agree_with_capstone_and_round_trip() -> None:
    for source, op in [("nop", "nop"), ("isb", "isb"), ("eret", "eret"), ("ret", "ret")]:
        _check(source, op=op)


# --- Every form, against Capstone ----------------------------------------------------


@FAST
@given(op=st.sampled_from(["movz", "movn", "movk"]), rd=st.integers(0, 31), is64=widths,
       imm=st.integers(0, 0xFFFF), hw=st.integers(0, 3), mnemonic_case=st.booleans())
def test_move_wide_instructions_match_capstone_and_round_trip(
    op: str, rd: int, is64: bool, imm: int, hw: int, mnemonic_case: bool
) -> None:
    hw = hw if is64 else hw % 2
    mnemonic = op.upper() if mnemonic_case else op
    text = f"{mnemonic} {_r(rd, is64)}, #{imm:#x}" + (f", lsl #{16 * hw}" if hw else "")
    _check(text, op=op, rd=rd, imm=imm, shift=16 * hw, sf=is64)


def _wide_value(insn: Insn) -> int:
    bits = 64 if insn.sf else 32
    value = insn.imm << insn.shift
    return ~value & ((1 << bits) - 1) if insn.op == "movn" else value


@FAST
@given(rd=regs, is64=widths, chunk=st.integers(0, 0xFFFF), hw=st.integers(0, 3), invert=st.booleans(),
       negative=st.booleans())
def test_mov_immediate_picks_movz_or_movn_and_matches_capstone(
    rd: int, is64: bool, chunk: int, hw: int, invert: bool, negative: bool
) -> None:
    bits = 64 if is64 else 32
    value = chunk << (16 * (hw % (bits // 16)))
    if invert:
        value = ~value & ((1 << bits) - 1)
    shown = value - (1 << bits) if negative and value >> (bits - 1) else value
    word = _check(f"mov {_r(rd, is64)}, #{shown}", rd=rd, sf=is64)
    insn = decode(word)
    assert insn.op in ("movz", "movn")
    assert _wide_value(insn) == value


@pytest.mark.parametrize("value", [0x12345678, 0x1_0001, 0xDEAD_BEEF_0000_0001])
def test_mov_immediate_that_needs_several_instructions_is_an_error_naming_movz_and_movk(value: int) -> None:
    err = _error(f"mov x3, #{value:#x}")
    assert (err.line, err.column) == (1, 9)
    assert "movz x3" in err.reason and "movk x3" in err.reason
    # The suggested sequence really builds the value.
    steps = err.reason.split("build it with ")[1].split(" (or")[0]
    program = assemble("\n".join(steps.split("; ")))
    built = 0
    for word in program.words:
        insn = decode(word)
        mask = 0xFFFF << insn.shift
        built = (built & ~mask) | (insn.imm << insn.shift) if insn.op == "movk" else insn.imm << insn.shift
    assert built == value


def test_mov_immediate_error_mentions_orr_when_the_value_is_a_bitmask() -> None:
    err = _error("mov x0, #0x5555555555555555")
    assert "orr x0, xzr, #0x5555555555555555" in err.reason


@FAST
@given(rd=st.integers(0, 31), rm=st.integers(0, 31), is64=widths)
def test_mov_register_is_the_orr_alias_and_matches_capstone(rd: int, rm: int, is64: bool) -> None:
    word = _check(f"mov {_r(rd, is64)}, {_r(rm, is64)}", op="orr_reg", rd=rd, rn=31, rm=rm, sf=is64)
    assert word == (is64 << 31) | 0x2A0003E0 | rm << 16 | rd


@FAST
@given(n=regs, is64=widths, to_sp=st.booleans())
def test_mov_to_or_from_sp_is_add_immediate_zero(n: int, is64: bool, to_sp: bool) -> None:
    rd, rn = (31, n) if to_sp else (n, 31)
    _check(f"mov {_r(rd, is64, sp=True)}, {_r(rn, is64, sp=True)}", op="add_imm", rd=rd, rn=rn, imm=0)


@FAST
@given(op=st.sampled_from(["add", "sub"]), rd=st.integers(0, 31), rn=st.integers(0, 31), is64=widths,
       imm=st.integers(0, 4095), lsl12=st.booleans())
def test_add_and_sub_immediate_match_capstone_and_round_trip(
    op: str, rd: int, rn: int, is64: bool, imm: int, lsl12: bool
) -> None:
    text = f"{op} {_r(rd, is64, sp=True)}, {_r(rn, is64, sp=True)}, #{imm}" + (", lsl #12" if lsl12 else "")
    _check(text, op=f"{op}_imm", rd=rd, rn=rn, imm=imm, shift=12 if lsl12 else 0, sf=is64)


def test_add_immediate_multiple_of_4096_uses_the_shifted_form() -> None:
    assert decode(assemble("add x0, x1, #0x5000").words[0]).shift == 12
    assert assemble("add x0, x1, #0x5000").words == assemble("add x0, x1, #5, lsl #12").words


@FAST
@given(op=st.sampled_from(["add", "sub"]), rd=st.integers(0, 31), rn=st.integers(0, 31),
       rm=st.integers(0, 31), is64=widths, kind=st.sampled_from(["lsl", "lsr", "asr", None]),
       amount=st.integers(0, 63))
def test_add_and_sub_register_match_capstone_and_round_trip(
    op: str, rd: int, rn: int, rm: int, is64: bool, kind: str | None, amount: int
) -> None:
    amount = amount if is64 else amount % 32
    text = f"{op} {_r(rd, is64)}, {_r(rn, is64)}, {_r(rm, is64)}" + (f", {kind} #{amount}" if kind else "")
    _check(text, op=f"{op}_reg", rd=rd, rn=rn, rm=rm, sf=is64, shift=amount if kind else 0,
           shift_type=kind or "lsl")


@FAST
@given(rd=st.integers(0, 31), rn=st.integers(0, 31), rm=st.integers(0, 31), is64=widths,
       kind=st.sampled_from(["lsl", "lsr", "asr", "ror", None]), amount=st.integers(0, 63))
def test_orr_register_matches_capstone_and_round_trips(
    rd: int, rn: int, rm: int, is64: bool, kind: str | None, amount: int
) -> None:
    amount = amount if is64 else amount % 32
    text = f"orr {_r(rd, is64)}, {_r(rn, is64)}, {_r(rm, is64)}" + (f", {kind} #{amount}" if kind else "")
    _check(text, op="orr_reg", rd=rd, rn=rn, rm=rm, sf=is64, shift=amount if kind else 0,
           shift_type=kind or "lsl")


@st.composite
def bitmasks(draw: st.DrawFn, bits: int) -> int:
    """A logical immediate built from its definition, independently of the encoder."""
    esize = draw(st.sampled_from([e for e in (2, 4, 8, 16, 32, 64) if e <= bits]))
    ones = draw(st.integers(1, esize - 1))
    rotate = draw(st.integers(0, esize - 1))
    element = (1 << ones) - 1
    element = ((element >> rotate) | (element << (esize - rotate))) & ((1 << esize) - 1)
    return sum(element << (i * esize) for i in range(bits // esize))


@FAST
@given(data=st.data(), rd=st.integers(0, 31), rn=st.integers(0, 31), is64=widths)
def test_orr_bitmask_immediate_matches_capstone_and_round_trips(
    data: st.DataObject, rd: int, rn: int, is64: bool
) -> None:
    value = data.draw(bitmasks(64 if is64 else 32))
    text = f"orr {_r(rd, is64, sp=True)}, {_r(rn, is64)}, #{value:#x}"
    _check(text, op="orr_imm", rd=rd, rn=rn, imm=value, sf=is64)


def test_every_logical_immediate_encoding_decodes_and_re_encodes_to_itself() -> None:
    valid = {32: 0, 64: 0}
    for bits in (32, 64):
        for n in (0, 1):
            for immr in range(64):
                for imms in range(64):
                    value = decode_bitmask(n, immr, imms, bits)
                    if value is None:
                        continue
                    valid[bits] += 1
                    # immr bits above the element size are ignored by the hardware
                    again = encode_bitmask(value, bits)
                    assert again is not None
                    assert decode_bitmask(*again, bits) == value
    # The architecture has 5334 distinct 64-bit and 1302 distinct 32-bit logical immediates.
    every64 = {decode_bitmask(n, r, s, 64) for n in (0, 1) for r in range(64) for s in range(64)}
    every32 = {decode_bitmask(0, r, s, 32) for r in range(32) for s in range(64)}
    assert len(every64 - {None}) == 5334
    assert len(every32 - {None}) == 1302


@pytest.mark.parametrize("value", [0, -1, 0xFFFF_FFFF_FFFF_FFFF, 0x12345, 0b101])
def test_values_that_are_not_bitmask_immediates_are_rejected_by_orr(value: int) -> None:
    err = _error(f"orr x0, x1, #{value}")
    assert err.column == 13 and "bitmask" in err.reason


@FAST
@given(rd=st.integers(0, 31), offset=st.integers(-(1 << 20), (1 << 20) - 1), style=st.sampled_from("ar"))
def test_adr_matches_capstone_for_every_offset_in_range(rd: int, offset: int, style: str) -> None:
    target = HIGH_BASE + offset
    operand = f"{target:#x}" if style == "a" else f".{'-' if offset < 0 else '+'}{abs(offset)}"
    _check(f"adr {_r(rd, True)}, {operand}", base=HIGH_BASE, op="adr", rd=rd, offset=offset)


@FAST
@given(op=st.sampled_from(["ldr", "str"]), rt=st.integers(0, 31), rn=st.integers(0, 31), is64=widths,
       index=st.integers(0, 4095), omit=st.booleans())
def test_ldr_and_str_unsigned_offset_match_capstone_and_round_trip(
    op: str, rt: int, rn: int, is64: bool, index: int, omit: bool
) -> None:
    size = 8 if is64 else 4
    offset = 0 if omit else index * size
    mem = f"[{_r(rn, True, sp=True)}]" if omit else f"[{_r(rn, True, sp=True)}, #{offset}]"
    _check(f"{op} {_r(rt, is64)}, {mem}", op=op, rt=rt, rn=rn, imm=offset, size=size, sf=is64)


@FAST
@given(rt=st.integers(0, 31), is64=widths, index=st.integers(-(1 << 18), (1 << 18) - 1))
def test_ldr_literal_matches_capstone_and_round_trips(rt: int, is64: bool, index: int) -> None:
    target = HIGH_BASE + 4 * index
    _check(f"ldr {_r(rt, is64)}, {target:#x}", base=HIGH_BASE, op="ldr_lit", rt=rt, offset=4 * index,
           size=8 if is64 else 4)


@FAST
@given(op0=st.integers(2, 3), op1=st.integers(0, 7), crn=st.integers(0, 15), crm=st.integers(0, 15),
       op2=st.integers(0, 7), rt=st.integers(0, 31), read=st.booleans())
def test_msr_and_mrs_with_generic_names_match_capstone_and_round_trip(
    op0: int, op1: int, crn: int, crm: int, op2: int, rt: int, read: bool
) -> None:
    enc = Encoding(op0, op1, crn, crm, op2)
    name = enc.generic_name()
    text = f"mrs {_r(rt, True)}, {name}" if read else f"msr {name}, {_r(rt, True)}"
    word = _check(text, op="mrs" if read else "msr", rt=rt, sysreg=enc, is_read=read)
    assert word == (0xD5200000 if read else 0xD5000000) | enc.sys_reg | rt


@pytest.mark.parametrize("name", sorted(REGISTERS))
def test_every_named_system_register_assembles_in_msr_and_mrs_and_round_trips(name: str) -> None:
    enc = REGISTERS[name].encoding
    assert enc is not None
    for text, word, op in [
        (f"msr {name}, x3", 0xD5000000 | enc.sys_reg | 3, "msr"),
        (f"mrs x4, {name.lower()}", 0xD5200000 | enc.sys_reg | 4, "mrs"),
        (f"MRS X4, {name.swapcase()}", 0xD5200000 | enc.sys_reg | 4, "mrs"),
    ]:
        assert _check(text, op=op, sysreg=enc) == word
        assert name.lower() in disassemble(word)


def test_write_only_and_read_only_registers_are_accepted_in_both_directions() -> None:
    # The architecture makes these UNDEFINED; lessons need the guest to try them.
    program = assemble("mrs x0, oslar_el1\nmsr oslsr_el1, x0\nmsr mdrar_el1, x1")
    assert [decode(w).op for w in program.words] == ["mrs", "msr", "msr"]


@FAST
@given(which=st.sampled_from(["daifset", "daifclr"]), imm=st.integers(0, 15), spelling=st.data())
def test_msr_daifset_and_daifclr_match_capstone_and_round_trip(
    which: str, imm: int, spelling: st.DataObject
) -> None:
    name = spelling.draw(_case(which))
    _check(f"msr {name}, #{imm}", op=f"msr_{which}", imm=imm)


@FAST
@given(op=st.sampled_from(["brk", "hvc", "svc", "udf"]), imm=st.integers(0, 0xFFFF), hashmark=st.booleans())
def test_brk_hvc_svc_and_udf_match_capstone_and_round_trip(op: str, imm: int, hashmark: bool) -> None:
    _check(f"{op} {'#' if hashmark else ''}{imm}", op=op, imm=imm)


@FAST
@given(rn=st.integers(0, 31))
def test_ret_with_a_register_matches_capstone_and_round_trips(rn: int) -> None:
    assert _check(f"ret {_r(rn, True)}", op="ret", rn=rn) == 0xD65F0000 | rn << 5


@FAST
@given(op=st.sampled_from(["b", "bl"]), index=st.integers(-(1 << 25), (1 << 25) - 1))
def test_b_and_bl_match_capstone_over_the_whole_range(op: str, index: int) -> None:
    target = HIGH_BASE + 4 * index
    _check(f"{op} {target:#x}", base=HIGH_BASE, op=op, offset=4 * index)


@FAST
@given(cond=st.sampled_from(sorted(set(CONDITIONS) | {"cs", "cc"})),
       index=st.integers(-(1 << 18), (1 << 18) - 1))
def test_b_cond_matches_capstone_for_every_condition(cond: str, index: int) -> None:
    target = HIGH_BASE + 4 * index
    number = {"cs": 2, "cc": 3}.get(cond, CONDITIONS.index(cond) if cond in CONDITIONS else -1)
    _check(f"b.{cond} {target:#x}", base=HIGH_BASE, op="b_cond", cond=number, offset=4 * index)


@FAST
@given(op=st.sampled_from(["cbz", "cbnz"]), rt=st.integers(0, 31), is64=widths,
       index=st.integers(-(1 << 18), (1 << 18) - 1))
def test_cbz_and_cbnz_match_capstone_and_round_trip(op: str, rt: int, is64: bool, index: int) -> None:
    target = HIGH_BASE + 4 * index
    _check(f"{op} {_r(rt, is64)}, {target:#x}", base=HIGH_BASE, op=op, rt=rt, sf=is64, offset=4 * index)


# --- The forms table and what is derived from it ----------------------------------------


def test_no_word_has_the_fixed_bits_of_two_forms() -> None:
    # So the order of FORMS cannot change what a word decodes to.
    for i, a in enumerate(FORMS):
        for b in FORMS[i + 1:]:
            assert (a.bits ^ b.bits) & a.mask & b.mask, f"{a.op} and {b.op} overlap"


def test_each_encoding_covers_32_bits_with_fixed_bits_and_fields_that_do_not_overlap() -> None:
    for form in FORMS:
        covered = form.mask
        for f in form.fields:
            field_mask = ((1 << f.width) - 1) << f.lsb
            assert covered & field_mask == 0, (form.op, f.name)
            covered |= field_mask
        assert covered == 0xFFFF_FFFF, form.op


@pytest.mark.parametrize("encoding", ["sf:1 10 100101 hw:2 imm16:16 rd:4", "1" * 33, "sf:1 0x2 " + "0" * 29])
def test_a_malformed_encoding_is_refused_when_the_table_is_built(encoding: str) -> None:
    with pytest.raises(ValueError):
        a64.Form("x", encoding, FORMS[0].to_insn, "", FORMS[0].syntax)


def test_ops_are_exactly_the_ops_of_the_table_and_unknown() -> None:
    ops = [form.op for form in FORMS]
    assert len(ops) == len(set(ops))
    assert OPS == set(ops) | {"unknown"}


def test_sp_operands_are_the_register_fields_the_table_marks_as_sp() -> None:
    assert SP_OPERANDS == {form.op: set(form.sp) for form in FORMS if form.sp}
    for form in FORMS:
        names = {f.name for f in form.fields}
        assert set(form.sp) <= names & {"rd", "rn", "rm", "rt"}, form.op


def test_pack_refuses_missing_fields_and_values_that_do_not_fit() -> None:
    movz = next(form for form in FORMS if form.op == "movz")
    assert movz.pack({"sf": 1, "hw": 1, "imm16": 0x1234, "rd": 3}) == 0xD2A24683
    with pytest.raises(ValueError):
        movz.pack({"sf": 1, "hw": 1, "imm16": 0x1234})
    with pytest.raises(ValueError):
        movz.pack({"sf": 1, "hw": 4, "imm16": 0x1234, "rd": 3})


def _words_of(form: a64.Form, n: int, seed: int) -> list[int]:
    """Words with the form's fixed bits; each field 0, 1, all ones or random, so aliases and edges occur."""
    rng = random.Random(seed)
    words = []
    for _ in range(n):
        values = {}
        for f in form.fields:
            top = (1 << f.width) - 1
            values[f.name] = rng.choice([0, 1, top, rng.randint(0, top)])
        words.append(form.pack(values))
    return words


@pytest.mark.parametrize("form", FORMS, ids=lambda form: form.op)
def test_every_form_round_trips_from_word_to_text_and_back(form: a64.Form) -> None:
    decoded = 0
    for word in _words_of(form, 300, seed=len(form.op)):
        insn = decode(word)
        assert insn.op in (form.op, "unknown"), (hex(word), insn.op)  # unknown: a reserved field value
        if insn.op == "unknown":
            continue
        decoded += 1
        text = disassemble(word, HIGH_BASE)
        assert assemble(text, HIGH_BASE).words == (word,), text
        assert decode(word) == insn
    assert decoded > 100, f"only {decoded} of 300 {form.op} words decode"


def test_every_syntax_in_the_table_is_the_preferred_text_of_some_word() -> None:
    shown: set[tuple[str, str]] = set()
    for form in FORMS:
        for word in _words_of(form, 2000, seed=13):
            insn = decode(word)
            text = disassemble(word, HIGH_BASE)
            if insn.op != "unknown" and not text.startswith(".inst"):
                mnemonic = text.split()[0]
                shown.add((form.op, "b.<cond>" if mnemonic.startswith("b.") else mnemonic))
    for form in FORMS:
        for syntax in form.syntaxes:
            assert (form.op, syntax.mnemonic) in shown, (form.op, syntax.source)


def test_usage_in_errors_lists_every_assembler_syntax_of_the_mnemonic() -> None:
    for form in FORMS:
        for syntax in form.syntaxes:
            if not syntax.usage:
                continue
            assert syntax.parse is not None, syntax.source
            for spelling in syntax.spellings:
                reason = _error(f"{spelling} " + ", ".join(["x0"] * 6)).reason
                assert reason.startswith("unexpected extra operand; usage: ")
                assert syntax.usage in reason.split("usage: ", 1)[1].split(" | "), (spelling, reason)


def test_the_module_docstring_shows_the_table_rendered_from_forms() -> None:
    doc = a64.__doc__ or ""
    assert syntax_table() in doc, "the a64 docstring table is out of date; paste in:\n" + syntax_table()
    rows = [line for line in doc.splitlines() if line.startswith("``")]
    for form in FORMS:
        for syntax in form.syntaxes:
            assert any(row.startswith(f"``{syntax.source}``") and f" {form.op} " in row for row in rows), (
                form.op, syntax.source)


# --- Any word: decode, disassemble, round trip ------------------------------------------

# One example word of each form; random bits are OR-ed into its operand fields.
_TEMPLATES = [
    (0xD2800000, 0x007FFFFF | 0x80000000 | 0x60000000),  # move wide, all opc values
    (0x11000000, 0x80FFFFFF | 0x60000000),  # add/sub immediate (and adds/subs)
    (0x32000000, 0x807FFFFF | 0x60000000),  # logical immediate
    (0x2A000000, 0x80FFFFFF | 0x60000000),  # logical shifted register
    (0x0B000000, 0x80FFFFFF | 0x60000000),  # add/sub shifted register
    (0x10000000, 0xFFFFFFFF & ~0x1F000000),  # adr/adrp
    (0xB9000000, 0x40FFFFFF | 0x00C00000),  # ldr/str unsigned offset
    (0x18000000, 0xC0FFFFFF),  # ldr literal
    (0xD5000000, 0x003FFFFF),  # system instructions and registers
    (0xD4000000, 0x00FFFFFF),  # exception generation
    (0xD6000000, 0x01FFFFFF),  # branch to register
    (0x14000000, 0x83FFFFFF),  # b/bl
    (0x54000000, 0x00FFFFFF),  # b.cond
    (0x34000000, 0x81FFFFFF),  # cbz/cbnz
    (0x00000000, 0xFFFFFFFF),  # anything
]


@st.composite
def words(draw: st.DrawFn) -> int:
    fixed, free = draw(st.sampled_from(_TEMPLATES))
    return fixed | (draw(st.integers(0, 0xFFFFFFFF)) & free)


@settings(max_examples=1000, deadline=None)
@given(word=words(), pc=st.integers(0, (1 << 46) - 1).map(lambda a: a * 4))
def test_any_word_decodes_disassembles_and_reassembles_to_itself(word: int, pc: int) -> None:
    insn = decode(word)
    assert insn.op in OPS
    text = disassemble(word, pc)
    assert assemble(text, pc).words == (word,), text
    if insn.op == "unknown":
        assert text == f".inst {word:#010x}"
        return
    if text.startswith(".inst"):  # a non-canonical orr bitmask encoding, shown as a comment
        assert insn.op == "orr_imm" and "// orr" in text
        return
    found = _capstone(word, pc)
    assert found is not None, f"we decode {word:#010x} as {text!r}; capstone does not"
    if insn.sysreg is not None:
        assert found[2] == _packed(insn.sysreg)
    elif insn.offset is None or 0 <= pc + insn.offset < 1 << 64:
        assert _norm(text) == _capstone_canonical(word, pc), (text, found)


def test_words_outside_the_subset_decode_to_unknown_and_print_as_inst() -> None:
    for word in (0xF1000C1F, 0x8A020020, 0x90000000, 0xD5080000, 0x1E602820, 0xD61F0000):
        assert decode(word).op == "unknown"
        assert disassemble(word) == f".inst {word:#010x}"
    assert decode(-1).op == "unknown" and decode(1 << 32).op == "unknown"
    assert decode("nop").op == "unknown"  # type: ignore[arg-type]


def test_reserved_encodings_inside_supported_groups_are_unknown() -> None:
    assert decode(0x52C00000).op == "unknown"  # 32-bit movz with lsl #32
    assert decode(0x12800000 | 1 << 29).op == "unknown"  # move wide opc 01
    assert decode(0x0B000000 | 3 << 22).op == "unknown"  # add (register) with shift type 11
    assert decode(0x2A000000 | 32 << 10).op == "unknown"  # 32-bit orr with shift 32
    assert decode(0x32400000).op == "unknown"  # 32-bit logical immediate with N = 1
    assert decode(0x3200FC00).op == "unknown"  # an all-ones element


def test_target_of_adds_the_offset_and_rejects_non_pc_relative_instructions() -> None:
    program = assemble("top: nop\nb top")
    assert decode(program.words[1]).target_of(BASE + 4) == BASE
    with pytest.raises(ValueError):
        decode(0xD503201F).target_of(0)


def test_sp_operands_say_where_register_31_is_the_stack_pointer() -> None:
    assert SP_OPERANDS["add_imm"] == {"rd", "rn"}
    assert SP_OPERANDS["ldr"] == {"rn"}
    assert "orr_reg" not in SP_OPERANDS
    assert set(SP_OPERANDS) <= OPS


def test_targets_outside_the_address_space_print_as_relative_offsets() -> None:
    word = assemble("b .-8", base=0).words[0]
    assert disassemble(word, 0) == "b .-0x8"
    assert disassemble(word, 0x100) == "b 0xf8"


# --- Labels, branches and ranges ------------------------------------------------------------


def test_forward_and_backward_label_references_resolve_to_the_right_offsets() -> None:
    program = assemble(
        """
        back:   nop
                b fwd           // forward
                b.eq back       ; backward
                cbnz x1, fwd
        fwd: two: adr x0, back
                ldr x2, data
        data:   .word 7
        """
    )
    assert dict(program.labels) == {"back": BASE, "fwd": BASE + 16, "two": BASE + 16, "data": BASE + 24}
    offsets = [decode(w).offset for w in program.words]
    assert offsets == [None, 12, -8, 4, -16, 4, None]
    assert program.lines == (2, 3, 4, 5, 6, 7, 8)
    assert program.text[2] == "b.eq back"
    assert program.words[-1] == 7


def test_labels_are_case_sensitive_and_may_stand_alone() -> None:
    program = assemble("Loop:\n  nop\nloop: b Loop")
    assert program.labels == {"Loop": BASE, "loop": BASE + 4}


@pytest.mark.parametrize(
    ("mnemonic", "low", "high"),
    [("b.ne", -(1 << 20), (1 << 20) - 4), ("cbz x0,", -(1 << 20), (1 << 20) - 4),
     ("b", -(1 << 27), (1 << 27) - 4), ("bl", -(1 << 27), (1 << 27) - 4),
     ("adr x0,", -(1 << 20), (1 << 20) - 1), ("ldr x0,", -(1 << 20), (1 << 20) - 4)],
)
def test_pc_relative_instructions_reach_exactly_their_architectural_range(
    mnemonic: str, low: int, high: int
) -> None:
    for offset in (low, high):
        word = assemble(f"{mnemonic} .{offset:+d}", base=HIGH_BASE).words[0]
        assert decode(word).offset == offset
    step = 1 if mnemonic.startswith("adr") else 4
    for offset in (low - step, high + step):
        err = _error(f"{mnemonic} .{offset:+d}".replace("\n", ""))
        assert "out of range" in err.reason and err.line == 1


def test_misaligned_branch_target_is_an_error() -> None:
    err = _error("b 0x80002")
    assert (err.line, err.column) == (1, 3) and "misaligned" in err.reason
    assert assemble("adr x0, 0x80003").words == (0x10000000 | 3 << 29,)


# --- Program --------------------------------------------------------------------------------


def test_program_records_base_lines_text_and_length() -> None:
    program = assemble("\n  // comment only\nstart: MOV X0, #1 ; set\n\nmsr OSLAR_EL1, x0\n", base=0x4000)
    assert isinstance(program, Program)
    assert program.base == 0x4000 and len(program) == 2 and program.end == 0x4008
    assert program.lines == (3, 5)
    assert program.text == ("MOV X0, #1", "msr OSLAR_EL1, x0")
    assert program.word_at(0x4004) == 0xD5101080 and program.word_at(0x4002) is None
    listing = program.disassembly()
    assert "start:" in listing and "msr oslar_el1, x0" in listing and "d5101080" in listing


def test_program_is_immutable() -> None:
    program = assemble("nop")
    with pytest.raises(AttributeError):
        program.words = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        program.labels["x"] = 1  # type: ignore[index]
    assert hash(program) == hash(assemble("nop"))


def test_listing_names_the_labels_branches_go_to() -> None:
    listing = assemble("loop: nop\n b loop").disassembly()
    assert "b 0x80000 <loop>" in listing


@pytest.mark.parametrize("base", [-4, 2, 1 << 48, (1 << 48) + 4, "0x80000", 4.0, True])
def test_bad_base_addresses_are_rejected(base: object) -> None:
    with pytest.raises(AsmError):
        assemble("nop", base=base)  # type: ignore[arg-type]


def test_highest_base_address_takes_exactly_one_word() -> None:
    assert len(assemble("nop", base=(1 << 48) - 4)) == 1
    err = _error_at("nop\nnop", base=(1 << 48) - 4)
    assert err.line == 2


def _error_at(source: str, base: int) -> AsmError:
    with pytest.raises(AsmError) as info:
        assemble(source, base)
    return info.value


@pytest.mark.parametrize("source", [None, b"nop", 42, ["nop"]])
def test_non_string_sources_are_asm_errors(source: object) -> None:
    with pytest.raises(AsmError):
        assemble(source)  # type: ignore[arg-type]


# --- Errors with line and column --------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "column", "words"),
    [
        ("nop\n  movv x0, #1", 2, 3, ["unknown instruction", "mov"]),
        ("hcv #0", 1, 1, ["did you mean", "hvc"]),
        ("b.xy label", 1, 3, ["unknown condition"]),
        ("mov x0", 1, 7, ["missing operand"]),
        ("add x0, x1,", 1, 12, ["missing operand"]),
        ("add x0, , x1", 1, 9, ["missing operand"]),
        ("nop x0", 1, 5, ["extra operand"]),
        ("mov x31, x1", 1, 5, ["out of range", "xzr"]),
        ("mov x0, w99", 1, 9, ["out of range"]),
        ("add x0, w1, #1", 1, 9, ["width"]),
        ("add x0, x1, x2, ror #1", 1, 17, ["shift"]),
        ("add x0, x1, #4096, lsl #12", 1, 13, ["0 to 4095"]),
        ("add x0, x1, #5000", 1, 13, ["0 to 4095"]),
        ("sub x0, x1, #-4", 1, 13, ["add x0, x1, #4"]),
        ("add x0, xzr, #1", 1, 9, ["sp"]),
        ("add sp, x1, x2", 1, 5, ["stack pointer"]),
        ("movz x0, #0x10000", 1, 10, ["0 to 65535"]),
        ("movz w0, #1, lsl #32", 1, 18, ["0 to 16"]),
        ("movk x0, #1, lsl #8", 1, 18, ["#16"]),
        ("orr x0, x1, x2, lsl #64", 1, 21, ["0 to 63"]),
        ("mov w0, #0x100000000", 1, 9, ["out of range"]),
        ("ldr x0, [x1, #4]", 1, 14, ["steps of 8"]),
        ("ldr w0, [x1, #16384]", 1, 14, ["0 to 16380"]),
        ("ldr x0, [w1]", 1, 10, ["x register"]),
        ("ldr x0, [x1, #8]!", 1, 17, ["pre-index"]),
        ("ldr x0, [x1, x2]", 1, 14, ["register offsets"]),
        ("str x0, label", 1, 9, ["memory operand"]),
        ("ldr x0, [x1", 1, 12, ["]"]),
        ("brk #65536", 1, 5, ["0 to 65535"]),
        ("hvc #-1", 1, 5, ["0 to 65535"]),
        ("msr daifset, #16", 1, 14, ["0 to 15"]),
        ("msr daifclr, x0", 1, 14, ["immediate"]),
        ("msr oslar_el1, #1", 1, 16, ["register"]),
        ("msr oslar_el1, w1", 1, 16, ["x register"]),
        ("mrs x0, oslsr_el2", 1, 9, ["unknown system register", "oslsr_el1"]),
        ("mrs x0, s1_0_c1_c1_4", 1, 9, ["op0"]),
        ("mrs x0, s3_8_c1_c1_4", 1, 9, ["op1"]),
        ("mrs x0, s3_0_c16_c1_4", 1, 9, ["CRn"]),
        ("b nowhere", 1, 3, ["undefined label"]),
        ("lop: nop\nb loop", 2, 3, ["undefined label", "lop"]),
        ("x: nop\n x: nop", 2, 2, ["duplicate label"]),
        ("x0: nop", 1, 1, ["label"]),
        ("b 0x80002", 1, 3, ["misaligned"]),
        ("b -8", 1, 3, ["negative"]),
        ("cbz x0, x1", 1, 9, ["register"]),
        ("mov x0, #1 @", 1, 12, ["unexpected character"]),
        ("mov x0, #0xg1", 1, 10, ["bad number"]),
        ("mov x0, #12abc", 1, 10, ["bad number"]),
        ("mov x0, #" + "9" * 100, 1, 10, ["too long"]),
        ("ret w1", 1, 5, ["x register"]),
        ("isb ish", 1, 5, ["sy"]),
        ("mov x0, #0x123456789", 1, 9, ["movk"]),
        ("mov sp, #1", 1, 5, ["sp"]),
        ("mov sp, xzr", 1, 9, ["register 31"]),
        (".word 0x100000000", 1, 7, ["out of range"]),
        ("1: nop", 1, 1, ["expected an instruction"]),
        ("orr x0, x1, #0", 1, 13, ["bitmask"]),
        ("\tnop\n\tadd x0, x1, #1, lsr #12", 2, 18, ["shift"]),
    ],
)
def test_bad_source_raises_asm_error_at_the_offending_token(
    source: str, line: int, column: int, words: list[str]
) -> None:
    err = _error(source)
    assert (err.line, err.column) == (line, column), err
    for word in words:
        assert word.lower() in str(err).lower(), err
    assert err.text == source.split("\n")[line - 1]
    assert str(err).startswith(f"line {line}, column {column}: ")


# --- Fuzzing: only AsmError ever escapes ----------------------------------------------------


def _assemble_or_asm_error(source: str) -> None:
    try:
        program = assemble(source)
    except AsmError as err:
        assert err.line >= 1 and err.column >= 1
        assert err.line <= source.count("\n") + 1
        return
    for word, pc in zip(program.words, range(program.base, program.end, 4), strict=True):
        assert assemble(disassemble(word, pc), pc).words == (word,)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises_anything_but_asm_error(source: str) -> None:
    _assemble_or_asm_error(source)


_SOUP = [
    "mov", "movz", "movk", "movn", "adr", "add", "sub", "orr", "ldr", "str", "msr", "mrs", "isb", "nop",
    "brk", "hvc", "udf", "b", "bl", "b.eq", "b.hs", "b.", "b.zz", "cbz", "cbnz", "ret", "eret", ".word",
    ".inst",
    "x0", "x1", "x30", "x31", "x99", "w0", "w7", "w31", "xzr", "wzr", "sp", "wsp", "oslar_el1", "OSLSR_EL1",
    "s3_0_c15_c2_0", "s2_7_c15_c15_7", "s9_9_c99_c99_9", "daifset", "daifclr", "lsl", "lsr", "asr", "ror",
    "sy", "#", "#0", "#1", "#12", "#4095", "#4096", "#-1", "#0xffff", "#0x10000", "0x80000", "-", "+", ".",
    ",", ",", ",", "[", "]", "!", ":", "loop", "loop:", "end:", "end", "//", ";", "\n", "\n", " ", "\t", "0",
    "99999999999999999999999", "0x", "0b2", "label", "L1:", "L1",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_SOUP), max_size=14).map(" ".join))
def test_token_soup_never_raises_anything_but_asm_error(source: str) -> None:
    _assemble_or_asm_error(source)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_SOUP), max_size=10).map("".join))
def test_glued_token_soup_never_raises_anything_but_asm_error(source: str) -> None:
    _assemble_or_asm_error(source)
