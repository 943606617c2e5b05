"""The architecture layer against BRIEF.md section 3 and 4 (and the Arm ARM)."""

from __future__ import annotations

import pytest

from kvmdbg.arch import (
    EC,
    OSLM,
    REGISTERS,
    DebugKind,
    DebugVer,
    DoubleLock,
    Encoding,
    debug_exception,
    decode_cp14,
    decode_sysreg,
    esr_cp14,
    esr_sysreg,
    lookup,
    reg_id,
)
from kvmdbg.errors import RegisterValueError, UnknownRegisterError

ENCODINGS = {
    "OSLAR_EL1": (2, 0, 1, 0, 4),
    "OSLSR_EL1": (2, 0, 1, 1, 4),
    "OSDLR_EL1": (2, 0, 1, 3, 4),
    "DBGPRCR_EL1": (2, 0, 1, 4, 4),
    "MDRAR_EL1": (2, 0, 1, 0, 0),
    "MDSCR_EL1": (2, 0, 0, 2, 2),
    "ID_AA64DFR0_EL1": (3, 0, 0, 5, 0),
    "DBGBVR3_EL1": (2, 0, 0, 3, 4),
    "DBGBCR3_EL1": (2, 0, 0, 3, 5),
    "DBGWVR7_EL1": (2, 0, 0, 7, 6),
    "DBGWCR7_EL1": (2, 0, 0, 7, 7),
}


@pytest.mark.parametrize("name,enc", ENCODINGS.items())
def test_each_register_has_the_encoding_in_the_brief(name, enc):
    assert REGISTERS[name].encoding == Encoding(*enc)


def test_oslsr_el1_userspace_id_is_0x603000000013808c():
    assert reg_id("OSLSR_EL1") == 0x603000000013808C
    assert reg_id("oslsr_el1") == 0x603000000013808C


def test_userspace_ids_round_trip_to_encodings():
    for name, r in REGISTERS.items():
        if r.encoding is not None:
            assert Encoding.from_kvm_id(r.kvm_id) == r.encoding
            assert lookup(r.kvm_id).name == name


def test_oslsr_value_0xa_decodes_to_oslm_implemented_oslk_set_ntt_clear():
    fields = REGISTERS["OSLSR_EL1"].decode(0xA)
    assert fields == {"OSLM": OSLM.IMPLEMENTED, "OSLK": 1, "nTT": 0}
    assert REGISTERS["OSLSR_EL1"].decode(0x8)["OSLK"] == 0


def test_oslm_is_split_over_bits_3_and_0():
    oslsr = REGISTERS["OSLSR_EL1"]
    assert oslsr.encode(OSLM=0b10) == 0x8
    assert oslsr.encode(OSLM=0b01) == 0x1
    assert oslsr.encode(OSLM=0b10, OSLK=1) == 0xA


def test_oslsr_resets_locked_on_a_cold_reset():
    assert REGISTERS["OSLSR_EL1"].reset == 0xA


def test_mdscr_mdcr_and_dfr0_field_positions_match_the_brief():
    mdscr = REGISTERS["MDSCR_EL1"]
    assert [mdscr.field(n).lsb for n in ("SS", "TDCC", "KDE", "MDE")] == [0, 12, 13, 15]
    mdcr = REGISTERS["MDCR_EL2"]
    assert [mdcr.field(n).lsb for n in ("TDE", "TDA", "TDOSA", "TDRA")] == [8, 9, 10, 11]
    dfr0 = REGISTERS["ID_AA64DFR0_EL1"]
    spans = {n: (dfr0.field(n).msb, dfr0.field(n).lsb) for n in
             ("DebugVer", "TraceVer", "PMUVer", "BRPs", "WRPs", "CTX_CMPs", "PMSVer", "DoubleLock")}
    assert spans == {"DebugVer": (3, 0), "TraceVer": (7, 4), "PMUVer": (11, 8), "BRPs": (15, 12),
                     "WRPs": (23, 20), "CTX_CMPs": (31, 28), "PMSVer": (35, 32), "DoubleLock": (39, 36)}
    assert DebugVer.V8 == 6 and DebugVer.V8_2 == 8
    assert DoubleLock.IMPLEMENTED == 0 and DoubleLock.NOT_IMPLEMENTED == 0xF


def test_bcr_and_wcr_fields_match_the_brief():
    bcr, wcr = REGISTERS["DBGBCR0_EL1"], REGISTERS["DBGWCR0_EL1"]
    assert (bcr.field("E").lsb, bcr.field("PMC").msb, bcr.field("PMC").lsb) == (0, 2, 1)
    assert (bcr.field("BAS").msb, bcr.field("BAS").lsb) == (8, 5)
    assert (wcr.field("LSC").msb, wcr.field("LSC").lsb, wcr.field("BAS").msb, wcr.field("BAS").lsb) == (4, 3, 12, 5)


def test_msr_oslar_x1_traps_with_esr_el2_0x62280420_as_measured_on_qemu():
    assert esr_sysreg(REGISTERS["OSLAR_EL1"].encoding, 1, is_read=False) == 0x62280420


def test_mrs_x2_oslsr_traps_with_esr_el2_0x62280443():
    assert esr_sysreg(REGISTERS["OSLSR_EL1"].encoding, 2, is_read=True) == 0x62280443


def test_sysreg_syndromes_decode_back_to_what_built_them():
    for r in REGISTERS.values():
        if r.encoding is None:
            continue
        for rt in (0, 7, 30):
            for is_read in (False, True):
                t = decode_sysreg(esr_sysreg(r.encoding, rt, is_read))
                assert (t.encoding, t.rt, t.is_read) == (r.encoding, rt, is_read)


def test_cp14_syndromes_have_ec_5_and_decode_back():
    value = esr_cp14(0, 1, 1, 4, 3, True)
    assert value >> 26 == EC.CP14_MR == 0x05
    c = decode_cp14(value)
    assert (c.opc1, c.crn, c.crm, c.opc2, c.rt, c.is_read) == (0, 1, 1, 4, 3, True)


def test_sys_reg_value_is_the_msr_mrs_operand_field():
    enc = REGISTERS["OSLAR_EL1"].encoding
    assert 0xD5000000 | enc.sys_reg | 1 == 0xD5101081  # MSR OSLAR_EL1, x1
    assert 0xD5200000 | REGISTERS["OSLSR_EL1"].encoding.sys_reg | 2 == 0xD5301182  # MRS x2, OSLSR_EL1


def test_unknown_register_names_suggest_close_ones():
    with pytest.raises(UnknownRegisterError, match="OSLSR_EL1"):
        lookup("OSLSR_EL")
    with pytest.raises(KeyError):
        lookup("nonsense")


def test_field_values_wider_than_the_field_are_refused():
    with pytest.raises(RegisterValueError, match="does not fit"):
        REGISTERS["OSLSR_EL1"].encode(OSLK=2)


# -- BRIEF.md section 4 ------------------------------------------------------------

BASE = dict(current_el=1, oslsr=0x8, osdlr=0, dbgprcr=0, mdscr=(1 << 13) | (1 << 15) | 1,
            mdcr_el2=0, hcr_el2=0, pstate_d=False)


def verdict(kind, **over):
    return debug_exception(kind, **{**BASE, **over})


@pytest.mark.parametrize("kind", [DebugKind.BREAKPOINT, DebugKind.WATCHPOINT, DebugKind.SOFTWARE_STEP])
def test_the_os_lock_blocks_breakpoints_watchpoints_and_step(kind):
    assert verdict(kind).generated
    assert not verdict(kind, oslsr=0xA).generated


def test_brk_is_generated_even_with_the_os_lock_set():
    assert verdict(DebugKind.BRK, oslsr=0xA, mdscr=0, pstate_d=True).generated


@pytest.mark.parametrize("kind", [DebugKind.BREAKPOINT, DebugKind.WATCHPOINT, DebugKind.SOFTWARE_STEP])
def test_the_double_lock_blocks_only_while_corenpdrq_is_clear(kind):
    assert not verdict(kind, osdlr=1).generated
    assert verdict(kind, osdlr=1, dbgprcr=1).generated


def test_same_el_debug_needs_kde_and_pstate_d_clear():
    assert not verdict(DebugKind.BREAKPOINT, mdscr=1 << 15).generated
    assert not verdict(DebugKind.BREAKPOINT, pstate_d=True).generated


def test_lower_el_to_el2_is_enabled_without_kde_when_tde_routes_to_el2():
    v = verdict(DebugKind.BREAKPOINT, mdscr=1 << 15, pstate_d=True, mdcr_el2=1 << 8)
    assert v.generated and v.target_el == 2
    assert verdict(DebugKind.BREAKPOINT, hcr_el2=1 << 27).target_el == 2


def test_breakpoints_and_watchpoints_need_mde_and_step_needs_ss():
    assert not verdict(DebugKind.BREAKPOINT, mdscr=1 << 13).generated
    assert not verdict(DebugKind.WATCHPOINT, mdscr=1 << 13).generated
    assert not verdict(DebugKind.SOFTWARE_STEP, mdscr=(1 << 13) | (1 << 15)).generated


def test_halting_blocks_debug_exceptions():
    assert not verdict(DebugKind.BREAKPOINT, halted=True).generated
