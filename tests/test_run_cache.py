"""The decoded-program cache of the guest executor: a second run decodes nothing and shares no state."""

from __future__ import annotations

import pytest

import kvmdbg.run
from kvmdbg import Machine, assemble

SOURCE = "add x1, x1, #1\norr x2, x2, x1, lsl #3\nsub x3, x3, x2\nstr x3, [sp, #8]\nldr x4, [sp, #8]"


def test_a_second_run_of_the_same_program_decodes_no_word_again(monkeypatch: pytest.MonkeyPatch) -> None:
    prog = assemble(SOURCE + "\nadd x9, x9, #77")  # a program no other test runs: not cached yet
    m = Machine("upstream", trace=False)
    decoded: list[int] = []
    real = kvmdbg.run.decode
    monkeypatch.setattr(kvmdbg.run, "decode", lambda word: decoded.append(word) or real(word))
    first = m.run(prog)
    assert decoded == list(prog.words)
    decoded.clear()
    second = m.run(prog)
    assert decoded == []
    assert second.steps == first.steps and second.stop_reason == first.stop_reason == "end"


def test_a_cached_program_runs_on_each_machine_with_that_machines_registers() -> None:
    prog = assemble(SOURCE)
    a, b = Machine("upstream", trace=False), Machine("p2", trace=False)
    a.run(assemble("mov x1, #5"))
    ra1 = a.run(prog)
    rb1 = b.run(prog)
    ra2 = a.run(prog)
    assert (ra1.regs["x1"], rb1.regs["x1"], ra2.regs["x1"]) == (6, 1, 7)
    assert rb1.regs["x2"] == 1 << 3 and ra2.regs["x2"] == (ra1.regs["x2"] | 7 << 3)
    assert ra2.memory.read(ra2.regs["sp"] + 8, 8) == ra2.regs["x3"] == ra2.regs["x4"]
    # Each run has memory of its own: the program's words, and what that run stored.
    assert rb1.memory.read(prog.base, 4) == prog.words[0]
    assert rb1.memory.read(rb1.regs["sp"] + 8, 8) == rb1.regs["x3"]


def test_a_run_that_ends_in_an_error_leaves_the_cache_usable() -> None:
    from kvmdbg import RunawayGuestError

    prog = assemble("loop:\nadd x0, x0, #1\nb loop")
    m = Machine("upstream", trace=False)
    for _ in range(2):
        with pytest.raises(RunawayGuestError):
            m.run(prog, max_steps=100)
    assert m.run(assemble("mov x7, #3")).regs["x7"] == 3
    assert m.kvm.vcpus[0].x[0] == 100  # 50 adds in each of the two runs


def test_a_straight_run_stops_exactly_at_max_steps() -> None:
    from kvmdbg import RunawayGuestError

    prog = assemble("\n".join(["add x1, x1, #1"] * 20))
    m = Machine("upstream", trace=False)
    for _ in range(2):  # compiled, then from the cache
        m.run(assemble("mov x1, #0"))
        with pytest.raises(RunawayGuestError) as info:
            m.run(prog, max_steps=7)
        result = info.value.result  # type: ignore[attr-defined]
        assert result.steps == 7 and result.regs["x1"] == 7 and result.pc == prog.base + 28


def test_a_jump_into_the_middle_of_a_straight_run_executes_only_its_tail() -> None:
    prog = assemble("adr x9, mid\nret x9\nadd x1, x1, #1\nadd x1, x1, #1\nmid:\nadd x1, x1, #1\nadd x1, x1, #1")
    m = Machine("upstream", trace=False)
    m.run(assemble("mov x1, #0"))
    first = m.run(prog)
    m.run(assemble("mov x1, #0"))
    second = m.run(prog)
    assert (first.regs["x1"], first.steps) == (second.regs["x1"], second.steps) == (2, 4)
