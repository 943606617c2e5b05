"""The guest executor (kvmdbg.run): instructions, debug exceptions, exits, limits."""

from __future__ import annotations

import pytest

from kvmdbg import Machine, RunawayGuestError, assemble
from kvmdbg.arch.esr import EC


def test_alu_loop_runs_to_its_end_with_the_right_registers() -> None:
    # Its speed (once asserted here: > 250,000 instructions/s) is measured in benchmarks/, not here.
    m = Machine("upstream", trace=False)
    prog = assemble("""
        mov x0, #0
        movz x1, #0x1, lsl #16
    loop:
        add x0, x0, #2
        sub x1, x1, #1
        cbnz x1, loop
    """)
    res = m.run(prog, max_steps=10**6)
    assert res.regs["x0"] == 2 * 0x10000 and res.regs["x1"] == 0
    assert res.steps == 2 + 3 * 0x10000
    assert res.stop_reason == "end"
    assert m.where() == "guest"


def test_brk_always_taken_and_skipped() -> None:
    m = Machine("baseline", trace=False)
    prog = assemble("brk #5\nmov x2, #7")
    res = m.run(prog)
    (exc,) = res.exceptions
    assert exc.kind == "brk" and exc.pc == prog.base and exc.ec == EC.BRK64 and exc.el == 1
    assert res.regs["x2"] == 7


def test_sysreg_trap_and_undef() -> None:
    m = Machine("upstream", trace=False)
    res = m.run(assemble("mov x1, #1\nmsr oslar_el1, x1\nmrs x2, oslsr_el1\nmrs x3, oslar_el1\nmov x4, #9"))
    assert res.regs["x2"] == 0xA
    assert [e.kind for e in res.exceptions] == ["undef"]
    assert res.regs["x4"] == 9
    # MRS OSLAR_EL1 is UNDEFINED at the guest's own EL1 (BRIEF.md section 5): no exit to the host.
    assert [e.reason for e in res.exits] == ["sysreg"] * 2


def test_hvc_exits_and_returns_not_supported() -> None:
    m = Machine("p1", trace=False)
    res = m.run(assemble("mov x0, #3\nhvc #1\nmov x5, #1\nhvc #0xffff\nmov x6, #1"))
    assert [e.reason for e in res.exits] == ["hvc", "hvc"]
    assert res.regs["x0"] == (1 << 64) - 1 and res.regs["x5"] == 1 and res.regs["x6"] == 0
    assert res.stop_reason == "hvc #0xffff"


def test_ldr_str_memory() -> None:
    m = Machine(trace=False)
    res = m.run(assemble("movz x1, #9, lsl #16\nmov x2, #0x1234\nstr x2, [x1, #8]\nldr w3, [x1, #8]"))
    assert res.regs["x3"] == 0x1234
    assert res.memory.read(0x90008, 8) == 0x1234


@pytest.mark.parametrize("bad", [0, -3, 1.5, "10", True, None])
def test_bad_max_steps(bad: object) -> None:
    m = Machine(trace=False)
    before = m.snapshot()
    with pytest.raises(ValueError):
        m.run(assemble("nop"), max_steps=bad)  # type: ignore[arg-type]
    assert m.snapshot() == before and m.where() == "host"


def test_runaway_guest_is_recorded_consistently() -> None:
    m = Machine("upstream", trace=False)
    prog = assemble("mov x1, #1\nmsr oslar_el1, x1\nloop:\n add x0, x0, #1\n b loop")
    with pytest.raises(RunawayGuestError, match="max_steps=500") as info:
        m.run(prog, max_steps=500)
    res = info.value.result  # type: ignore[attr-defined]
    assert res.steps == 500 and res.stop_reason == "max_steps"
    v = m.kvm.vcpus[0]
    assert v.x[0] == res.regs["x0"] == 249  # the registers written back agree with the result
    assert v.pc == res.pc and prog.base <= v.pc < prog.end
    assert m.vcpu_reg("OSLSR_EL1") == 0xA  # the work done before the limit stays done
    # the machine is usable afterwards
    assert m.run(assemble("mov x0, #4")).regs["x0"] == 4


def test_vmm_breakpoint_exits_with_debug() -> None:
    m = Machine("baseline", trace=False)
    prog = assemble("nop\nhere:\n nop\nmov x1, #1")
    m.set_guest_debug(hw_breakpoints=[prog.labels["here"]])
    res = m.run(prog)
    assert res.stop_reason == "KVM_EXIT_DEBUG"
    assert res.exits[-1].reason == "debug" and res.exits[-1].pc == prog.labels["here"]
    assert (res.exits[-1].esr >> 26) == EC.BREAKPOINT_LOW
    assert res.regs["x1"] == 0 and not m.loaded()


def test_vmm_single_step() -> None:
    m = Machine("upstream", trace=False)
    m.set_guest_debug(single_step=True)
    res = m.run(assemble("mov x0, #1\nmov x1, #2"))
    assert res.stop_reason == "KVM_EXIT_DEBUG" and res.steps == 1
    assert res.exceptions[-1].kind == "step" and res.exceptions[-1].el == 2


def test_guest_watchpoint_handler_semantics() -> None:
    m = Machine("upstream", trace=False)
    prog = assemble("""
        mov x0, #0x1ffb
        msr dbgwcr0_el1, x0
        movz x1, #9, lsl #16
        msr dbgwvr0_el1, x1
        msr daifclr, #8
        mov x0, #0xa000
        msr mdscr_el1, x0
        isb
        mov w3, #0x78
    st: str w3, [x1, #4]
        str w3, [x1]
    """)
    res = m.run(prog)
    (wp,) = res.of_kind("watchpoint")
    assert wp.pc == prog.labels["st"] and wp.far == 0x90004 and wp.ec == EC.WATCHPT_CUR
    assert res.memory.read(0x90004, 1) == 0x78  # re-executed with PSTATE.D set: completes
    assert m.physical("FAR_EL1") == 0x90004
