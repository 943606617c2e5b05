"""``kvmdbg patches`` and ``kvmdbg diff``: the patches as data, on the command line."""

from __future__ import annotations

import pytest

from kvmdbg import cli
from kvmdbg.patches import PATCHES, REGISTRY


def test_patches_lists_every_patch_and_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["patches"]) == 0
    out = capsys.readouterr().out
    for name, patch in PATCHES.items():
        assert f"  {name} " in out and patch.message_id in out
    for v in REGISTRY:
        assert f"  {v.name} " in out
    assert "baseline + p1 + p2 + p3" in out


def test_diff_shows_what_patch_2_touched(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["diff", "p1", "p2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "sys_reg_descs[OSLAR_EL1]: handler trap_raz_wi -> trap_oslar_el1" in lines
    assert "sys_reg_descs[OSLSR_EL1]: reset reset_val(0x8) -> reset_val(0xa)" in lines
    assert "4 difference(s)" in captured.err


def test_diff_of_a_variant_with_itself_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["diff", "p1,p2", "p2"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "0 difference(s)" in captured.err


def test_diff_refuses_an_unknown_variant_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["diff", "p1", "p9"]) == 2
    err = capsys.readouterr().err
    assert "unknown variant 'p9'" in err and "Traceback" not in err
