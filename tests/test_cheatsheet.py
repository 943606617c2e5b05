"""The cheat sheet says what the model computes: fields, ids and the ESR layout."""

from __future__ import annotations

import pytest

from kvmdbg.arch.esr import esr_sysreg
from kvmdbg.arch.registers import REGISTERS, Encoding
from kvmdbg.teach import cheatsheet


def test_every_sheet_register_is_listed_with_its_encoding_and_fields() -> None:
    text = cheatsheet.markdown()
    for name in cheatsheet.SHEET_REGISTERS:
        r = REGISTERS[name]
        assert f"`{name}`" in text and str(r.encoding) in text
        for f in r.fields:
            assert f.name in text
    assert "`0x603000000013808c`" in text  # OSLSR_EL1's userspace id (BRIEF.md section 3)


def test_the_oslsr_values_to_know() -> None:
    assert "`0x8` = OS Lock implemented (OSLM = 0b10), unlocked; `0xa` = locked" in cheatsheet.markdown()


def test_the_worked_example_is_the_trap_qemu_and_the_model_report() -> None:
    # BRIEF.md section 7: MSR OSLAR_EL1, x1 gives ESR_EL2 0x62280420.
    assert "ESR_EL2 = `0x62280420`" in cheatsheet.iss_table()


@pytest.mark.parametrize("name,msb,lsb", [(n, m, lo) for n, m, lo, _ in cheatsheet.ISS_FIELDS])
def test_each_iss_field_sits_where_the_sheet_says(name: str, msb: int, lsb: int) -> None:
    # Build a syndrome with only this field at its maximum and check which bits light up.
    top = (1 << (msb - lsb + 1)) - 1
    args = {"Op0": Encoding(top, 0, 0, 0, 0), "Op1": Encoding(0, top, 0, 0, 0), "CRn": Encoding(0, 0, top, 0, 0),
            "CRm": Encoding(0, 0, 0, top, 0), "Op2": Encoding(0, 0, 0, 0, top)}
    enc = args.get(name, Encoding(0, 0, 0, 0, 0))
    rt = top if name == "Rt" else 0
    iss = esr_sysreg(enc, rt, name == "Direction") & 0x1FFFFFF
    assert iss == top << lsb
