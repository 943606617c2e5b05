"""The named bits come from the register table, and sit where the Arm ARM puts them."""

from __future__ import annotations

import pytest

from kvmdbg.arch import bits

# Bit positions from the Arm ARM (DDI 0487) register descriptions.
ARM_ARM = {
    "OSLAR_OSLK": 0, "OSLSR_OSLK": 1, "OSDLR_DLK": 0, "DBGPRCR_CORENPDRQ": 0,
    "MDSCR_SS": 0, "MDSCR_KDE": 13, "MDSCR_MDE": 15,
    "MDCR_TPMCR": 5, "MDCR_TPM": 6, "MDCR_TDE": 8, "MDCR_TDA": 9, "MDCR_TDOSA": 10, "MDCR_TDRA": 11,
    "MDCR_TPMS": 14, "MDCR_TTRF": 19,
    "HCR_VM": 0, "HCR_TID3": 18, "HCR_TSC": 19, "HCR_TGE": 27, "HCR_E2H": 34,
}


@pytest.mark.parametrize(("name", "bit"), sorted(ARM_ARM.items()))
def test_each_named_bit_is_where_the_architecture_puts_it(name: str, bit: int) -> None:
    assert getattr(bits, name) == 1 << bit


def test_every_named_bit_is_checked() -> None:
    assert set(bits.__all__) - {"MDCR_HPMN"} == set(ARM_ARM)
    assert bits.MDCR_HPMN == 0x1F  # HPMN, bits [4:0]
