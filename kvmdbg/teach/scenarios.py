"""Built-in scenarios: small, named guest/host stories run on a :class:`~kvmdbg.Machine`.

Each scenario is a function ``(machine) -> dict`` of observations (plain values:
ints, bools, short strings) that documents, in its docstring, what it does and
which facts it exposes. ``names()`` lists them, ``get(name)`` returns a
:class:`Scenario` (``.name``, ``.doc``, ``.func``; calling it runs the function).

``selftest-oslock`` re-expresses, in our own assembly, the stages of the kernel
selftest ``tools/testing/selftests/kvm/aarch64/debug-exceptions.c`` as of Linux
5.18 (the OS Lock stages came with "selftests: KVM: Test OS lock behavior",
v5 6/6). The guest's exception handlers are the ones the executor models (see
:mod:`kvmdbg.run`): BRK skips the instruction, hardware breakpoint and watchpoint
handlers set SPSR.D and return to the same instruction, the step handler sets
SPSR.SS. The handlers' variables (``sw_bp_addr``, ``hw_bp_addr``,
``wp_data_addr``, ``ss_addr[]``) are computed from the exceptions the run recorded.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvmdbg.errors import GuestFault, ScenarioError, ScenarioTypeError

__all__ = ["Scenario", "names", "get", "register", "SELFTEST_STAGES", "run_selftest",
           "run_selftest_as_the_kernel_does"]

Observations = dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """A named scenario: ``func(machine)`` returns a dict of observations."""

    name: str
    doc: str
    func: Callable[[Any], Observations]

    def __call__(self, machine: Any) -> Observations:
        return self.func(machine)


_REGISTRY: dict[str, Scenario] = {}


def register(name: str) -> Callable[[Callable[[Any], Observations]], Callable[[Any], Observations]]:
    def deco(func: Callable[[Any], Observations]) -> Callable[[Any], Observations]:
        _REGISTRY[name] = Scenario(name, (func.__doc__ or "").strip(), func)
        return func
    return deco


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Scenario:
    if not isinstance(name, str):
        raise ScenarioTypeError(f"a scenario name is a str such as 'oslock-toggle', not {type(name).__name__} "
                                f"({name!r:.60}); built-in scenarios: {', '.join(_REGISTRY)}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ScenarioError(f"unknown scenario {name!r}.{hint} Built-in scenarios: {', '.join(_REGISTRY)}")


# -- helpers ---------------------------------------------------------------------------


def _read(machine: Any, reg: str) -> int | str:
    """A guest read, or "UNDEF" if the guest takes an exception."""
    try:
        return int(machine.guest_read(reg))
    except GuestFault:
        return "UNDEF"


def _write(machine: Any, reg: str, value: int) -> str:
    try:
        machine.guest_write(reg, value)
    except GuestFault:
        return "UNDEF"
    return "ok"


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


# -- the scenarios -----------------------------------------------------------------------


@register("oslock-toggle")
def oslock_toggle(machine: Any) -> Observations:
    """The guest locks the OS Lock (OSLAR_EL1=1), reads OSLSR_EL1, unlocks, reads again.

    Baseline/p1: reads are 0x8 both times (OSLAR is RAZ/WI). p2/p3: the stored OSLSR never
    changes on a guest write (the swapped-argument bug in trap_oslar_el1 as posted), and it
    resets to 0xA, so both reads give 0xA. Upstream: 0xA after locking, 0x8 after unlocking;
    the PE's OS Lock is never touched.
    """
    obs: Observations = {"lock write": _write(machine, "OSLAR_EL1", 1)}
    obs["OSLSR after lock"] = _read(machine, "OSLSR_EL1")
    obs["physical OSLSR after lock"] = machine.physical("OSLSR_EL1")
    obs["unlock write"] = _write(machine, "OSLAR_EL1", 0)
    obs["OSLSR after unlock"] = _read(machine, "OSLSR_EL1")
    obs["physical OSLSR after unlock"] = machine.physical("OSLSR_EL1")
    return obs


@register("reset-state")
def reset_state(machine: Any) -> Observations:
    """After vCPU reset: what userspace (GET_ONE_REG) and then the guest read in OSLSR_EL1.

    Baseline: not in the register list (ENOENT), the guest reads 0x8. p1: 0x8 stored. p2/p3:
    0xA (a vCPU resets locked). Upstream: 0x8 (unlocked).
    """
    obs: Observations = {}
    try:
        obs["GET_ONE_REG OSLSR_EL1"] = machine.get_one_reg("OSLSR_EL1")
    except OSError as exc:
        obs["GET_ONE_REG OSLSR_EL1"] = _errno_name(exc)
    obs["vcpu context OSLSR_EL1"] = machine.vcpu_reg("OSLSR_EL1")
    obs["physical OSLSR before entry"] = machine.physical("OSLSR_EL1")
    obs["guest reads OSLSR_EL1"] = _read(machine, "OSLSR_EL1")
    obs["physical OSLSR while guest runs"] = machine.physical("OSLSR_EL1")
    return obs


@register("vhe-host-leak")
def vhe_host_leak(machine: Any) -> Observations:
    """The guest locks (OSLAR_EL1=1); the vCPU is put; is the physical OS Lock still set for the host?

    Only p2/p3 put the guest's lock in hardware. On VHE the host's EL1 state is never saved or
    restored, so after vcpu_put the host keeps running with the guest's OSLK (the PE's OSLSR_EL1
    reads 0xA). On nVHE the host's value (0x8) comes back on every exit. Other variants never
    change the hardware.
    """
    obs: Observations = {"lock write": _write(machine, "OSLAR_EL1", 1)}
    obs["physical OSLSR while guest runs"] = machine.physical("OSLSR_EL1")
    machine.exit_guest()
    obs["physical OSLSR after exit (loaded)"] = machine.physical("OSLSR_EL1")
    machine.vcpu_put()
    phys = machine.physical("OSLSR_EL1")
    obs["physical OSLSR after vcpu_put"] = phys
    obs["host runs locked"] = bool(phys & 2)
    return obs


@register("vhe-lost-update")
def vhe_lost_update(machine: Any) -> Observations:
    """On a locked vCPU the guest writes OSLAR_EL1=0 while loaded; put, load, read back.

    The brief (VHE, patch 2): the trapped write updates only the in-memory copy, and vcpu_put
    saves the stale hardware value over it. Note that as posted, p2's trap_oslar_el1 never
    updates the stored OSLSR at all (swapped vcpu_write_sys_reg arguments, see
    kvmdbg/patches/p2.py), so under p2/p3 the unlock is lost on nVHE and VHE alike.
    """
    obs: Observations = {"lock write": _write(machine, "OSLAR_EL1", 1)}
    machine.vcpu_put()
    machine.vcpu_load()
    obs["OSLSR before unlock"] = _read(machine, "OSLSR_EL1")
    obs["unlock write"] = _write(machine, "OSLAR_EL1", 0)
    obs["OSLSR after unlock (still loaded)"] = _read(machine, "OSLSR_EL1")
    machine.vcpu_put()
    obs["vcpu context OSLSR after put"] = machine.vcpu_reg("OSLSR_EL1")
    machine.vcpu_load()
    after = _read(machine, "OSLSR_EL1")
    obs["OSLSR after put/load"] = after
    obs["unlock lost"] = isinstance(after, int) and bool(after & 2)
    return obs


@register("userspace-oslsr")
def userspace_oslsr(machine: Any) -> Observations:
    """Userspace plants OSLSR_EL1=0x0 with KVM_SET_ONE_REG; the guest reads it; userspace reads it back.

    Baseline: OSLSR_EL1 is not a userspace register (ENOENT); the guest reads 0x8. p1: nothing
    checks the value, so the guest reads back 0x0 ("OS Lock not implemented") and so does
    GET_ONE_REG. p2/p3 on VHE: the guest reads the planted 0x0 (the handler reads the stored copy),
    but vcpu_put saves the PE's OSLSR_EL1 over it, so GET_ONE_REG returns 0x8 after the run; on nVHE
    the trapped read itself exits the guest first, which saves the PE's 0x8, so the guest already
    reads 0x8. Upstream refuses 0x0 (EINVAL: only OSLK may change) and the guest reads the reset 0x8.
    (Real runs under QEMU, BRIEF section 8, for p1, p2/p3 on VHE and upstream.)
    """
    obs: Observations = {}
    try:
        machine.set_one_reg("OSLSR_EL1", 0x0)
        obs["SET_ONE_REG OSLSR_EL1=0x0"] = "ok"
    except OSError as exc:
        obs["SET_ONE_REG OSLSR_EL1=0x0"] = _errno_name(exc)
    obs["guest reads OSLSR_EL1"] = _read(machine, "OSLSR_EL1")
    obs["physical OSLSR while guest runs"] = machine.physical("OSLSR_EL1")
    try:
        obs["GET_ONE_REG OSLSR_EL1 after the run"] = machine.get_one_reg("OSLSR_EL1")
    except OSError as exc:
        obs["GET_ONE_REG OSLSR_EL1 after the run"] = _errno_name(exc)
    return obs


VMM_BP_PROGRAM = """
    mov x0, #1
    msr oslar_el1, x0      // the guest sets its OS Lock
    isb
    nop
target:
    nop                    // the VMM's hardware breakpoint is here
    mov x1, #2
"""


@register("vmm-breakpoint")
def vmm_breakpoint(machine: Any) -> Observations:
    """The VMM sets a hardware breakpoint (KVM_SET_GUEST_DEBUG) on a label; the guest locks, then reaches it.

    Baseline/p1 and upstream stop with KVM_EXIT_DEBUG (upstream: USE_HW forces MDE on whatever
    the guest's lock says). Under p2/p3 the guest's OSLK is in the hardware, so the breakpoint
    does not fire and the program runs to its end.
    """
    from kvmdbg.arch.a64 import assemble

    prog = assemble(VMM_BP_PROGRAM)
    target = prog.labels["target"]
    machine.set_guest_debug(hw_breakpoints=[target])
    res = machine.run(prog, max_steps=1000)
    debug = [e for e in res.exits if e.reason == "debug"]
    return {
        "breakpoint address": target,
        "stop reason": res.stop_reason,
        "KVM_EXIT_DEBUG": bool(debug),
        "stopped at": debug[0].pc if debug else None,
        "x1 (set after the label)": res.regs["x1"],
        "physical OSLSR at the end": machine.physical("OSLSR_EL1"),
    }


@register("doublelock")
def doublelock(machine: Any) -> Observations:
    """The guest reads ID_AA64DFR0_EL1.DoubleLock, writes OSDLR_EL1=1, reads it back; physical OSDLR.

    Baseline/p1/p2 pass the host's DoubleLock field through (0 = implemented on v8.0-era
    CPUs) while OSDLR_EL1 is RAZ/WI: an advertised feature that does nothing. p3 reports 0xF
    (not implemented). Upstream keeps the 5.15 ID value; OSDLR stays RAZ/WI. No variant
    writes the physical OSDLR_EL1.
    """
    dfr0 = _read(machine, "ID_AA64DFR0_EL1")
    obs: Observations = {"ID_AA64DFR0_EL1": dfr0,
                         "DoubleLock field": (dfr0 >> 36) & 0xF if isinstance(dfr0, int) else dfr0,
                         "DebugVer field": dfr0 & 0xF if isinstance(dfr0, int) else dfr0}
    obs["OSDLR write"] = _write(machine, "OSDLR_EL1", 1)
    obs["OSDLR read back"] = _read(machine, "OSDLR_EL1")
    obs["physical OSDLR_EL1"] = machine.physical("OSDLR_EL1")
    return obs


def migrate(source: Any, destination: Any, vcpu: int = 0) -> Observations:
    """Save every listed register of ``source`` and restore it into ``destination``; errno per refusal."""
    from kvmdbg.arch.registers import REGISTERS

    by_id = {r.kvm_id: r.name for r in REGISTERS.values() if getattr(r, "kvm_id", None) is not None}
    saved = {rid: source.get_one_reg(rid, vcpu) for rid in source.get_reg_list(vcpu)}
    refused: dict[str, str] = {}
    for rid, value in saved.items():
        try:
            destination.set_one_reg(rid, value, vcpu)
        except OSError as exc:
            refused[by_id.get(rid, hex(rid))] = _errno_name(exc)
    return {"saved": len(saved), "restored": len(saved) - len(refused), "refused": refused}


@register("migration")
def migration(machine: Any) -> Observations:
    """Save vCPU 0 of a baseline (5.15) VM with GET_REG_LIST/GET_ONE_REG, restore into this machine.

    Each refused register is reported with its errno. Under p3 the older ID_AA64DFR0_EL1 value
    is refused (EINVAL): the migration objection to patch 3. Registers the source lists but the
    destination does not know would give ENOENT.
    """
    from kvmdbg.machine import Machine

    source = Machine("baseline", vhe=machine.vhe, trace=False)
    out = migrate(source, machine)
    obs: Observations = {"saved": out["saved"], "restored": out["restored"],
                         "refused count": len(out["refused"])}
    for name, err in sorted(out["refused"].items()):
        obs[f"refused {name}"] = err
    return obs


# -- the kernel selftest, re-expressed --------------------------------------------------

# Addresses: code at 0x80000 (the assembler's default), the selftest's `write_data` variable at 0x90000.
WRITE_DATA = 0x90000

_RESET = """
    msr daifset, #8          // reset_debug_state(): mask D
    mov x0, #0
    msr osdlr_el1, x0
    msr oslar_el1, x0        // unlock the OS Lock
    isb
    msr mdscr_el1, x0
    msr dbgbvr0_el1, x0
    msr dbgbcr0_el1, x0
    msr dbgwcr0_el1, x0
    msr dbgwvr0_el1, x0
    isb
"""
_ENABLE_OS_LOCK = """
    mov x0, #1               // enable_os_lock()
    msr oslar_el1, x0
    isb
    mrs x9, oslsr_el1        // GUEST_ASSERT(x9 & 2): checked after the run
"""
_KDE_MDE = """
    msr daifclr, #8
    mrs x0, mdscr_el1
    mov x2, #0xa000          // MDSCR_EL1.KDE | MDE
    orr x0, x0, x2
    msr mdscr_el1, x0
    isb
"""


def _install_hw_bp(label: str) -> str:
    return f"""
    mov x0, #0x1fe3          // install_hw_bp(): DBGBCR_LEN8 | EXEC | EL1 | E
    msr dbgbcr0_el1, x0
    adr x1, {label}
    msr dbgbvr0_el1, x1
    isb
""" + _KDE_MDE


_INSTALL_WP = f"""
    mov x0, #0x1ffb          // install_wp(): DBGWCR_LEN8 | RD | WR | EL1 | E
    msr dbgwcr0_el1, x0
    movz x1, #{WRITE_DATA >> 16:#x}, lsl #16   // &write_data
    msr dbgwvr0_el1, x1
    isb
""" + _KDE_MDE
_INSTALL_SS = """
    msr daifclr, #8          // install_ss()
    mrs x0, mdscr_el1
    mov x2, #0x2001          // MDSCR_EL1.KDE | SS
    orr x0, x0, x2
    msr mdscr_el1, x0
    isb
"""
_SS_BODY = """
ss_start:
    mrs x0, esr_el1
    add x0, x0, #1
    msr daifset, #8
"""
_STORE_X = f"""
    movz x1, #{WRITE_DATA >> 16:#x}, lsl #16
    mov w3, #0x78            // write_data = 'x'
    str w3, [x1]
"""
_STORE_0 = f"""
    movz x1, #{WRITE_DATA >> 16:#x}, lsl #16
    mov w3, #0               // write_data = '\\0'
    str w3, [x1]
"""

SELFTEST_STAGES: tuple[tuple[str, str], ...] = (
    ("1 BRK", _RESET + "sw_bp:\n    brk #0\n"),
    ("2 HW breakpoint", _RESET + _install_hw_bp("hw_bp") + "hw_bp:\n    nop\n"),
    ("3 HW breakpoint + SVC", _RESET + _install_hw_bp("bp_svc") + "bp_svc:\n    svc #0\n"),
    ("4 HW breakpoint + BRK", _RESET + _install_hw_bp("bp_brk") + "bp_brk:\n    brk #0\n"),
    ("5 Watchpoint", _RESET + _INSTALL_WP + _STORE_X),
    ("6 Single step", _RESET + _INSTALL_SS + _SS_BODY),
    ("7 OS Lock: BRK still taken", _RESET + _ENABLE_OS_LOCK + "sw_bp2:\n    brk #0\n"),
    ("8 OS Lock blocks hw breakpoint",
     _RESET + _ENABLE_OS_LOCK + _install_hw_bp("hw_bp2") + "hw_bp2:\n    nop\n"),
    ("9 OS Lock blocks watchpoint", _RESET + _ENABLE_OS_LOCK + _STORE_0 + _INSTALL_WP + _STORE_X),
    ("10 OS Lock blocks single step", _RESET + _ENABLE_OS_LOCK + _INSTALL_SS + _SS_BODY),
)
"""(stage name, guest assembly). Stage 0 is only a GUEST_SYNC."""


def _judge(stage: str, prog: Any, res: Any) -> tuple[bool, str]:
    """Evaluate the selftest's assertions for one stage from the run's exceptions and state."""
    lab = prog.labels

    def last(kind: str, attr: str = "pc") -> int:
        hits = [e for e in res.exceptions if e.kind == kind and e.el == 1]
        return getattr(hits[-1], attr) if hits else 0

    sw_bp_addr, hw_bp_addr, wp_data_addr = last("brk"), last("breakpoint"), last("watchpoint", "far")
    write_data = res.memory.read(WRITE_DATA, 1)
    steps = [e.pc for e in res.exceptions if e.kind == "step"]
    if stage.startswith(("7", "8", "9", "10")) and not res.regs["x9"] & 2:
        return False, f"enable_os_lock: GUEST_ASSERT(OSLSR_EL1 & 2) fails, OSLSR_EL1 read {res.regs['x9']:#x}"
    n = stage.split()[0]
    if n == "1":
        ok = sw_bp_addr == lab["sw_bp"]
        return ok, f"sw_bp_addr={sw_bp_addr:#x}, want {lab['sw_bp']:#x}"
    if n == "2":
        ok = hw_bp_addr == lab["hw_bp"]
        return ok, f"hw_bp_addr={hw_bp_addr:#x}, want {lab['hw_bp']:#x}"
    if n == "3":
        svcs = [e.pc + 4 for e in res.exceptions if e.kind == "svc"]  # regs->pc in the handler: ELR
        svc_addr = svcs[-1] if svcs else 0
        ok = hw_bp_addr == lab["bp_svc"] and svc_addr == lab["bp_svc"] + 4
        return ok, f"hw_bp_addr={hw_bp_addr:#x}, svc_addr={svc_addr:#x}, want {lab['bp_svc']:#x} and +4"
    if n == "4":
        ok = sw_bp_addr == lab["bp_brk"] and hw_bp_addr == lab["bp_brk"]
        return ok, f"sw_bp_addr={sw_bp_addr:#x}, hw_bp_addr={hw_bp_addr:#x}, want both {lab['bp_brk']:#x}"
    if n == "5":
        ok = write_data == ord("x") and wp_data_addr == WRITE_DATA
        return ok, (f"write_data={write_data:#x}, wp_data_addr={wp_data_addr:#x}, "
                    f"want 0x78 and {WRITE_DATA:#x}")
    if n == "6":
        start = lab["ss_start"]
        ss_addr = [pc for pc in steps if pc >= start][:3]  # ss_idx = 0 just before ss_start
        ok = ss_addr == [start, start + 4, start + 8]
        return ok, f"ss_addr={[hex(a) for a in ss_addr]}, want {hex(start)}, +4, +8"
    if n == "7":
        return sw_bp_addr == lab["sw_bp2"], f"sw_bp_addr={sw_bp_addr:#x}, want {lab['sw_bp2']:#x} (BRK taken)"
    if n == "8":
        return hw_bp_addr == 0, f"hw_bp_addr={hw_bp_addr:#x}, want 0 (blocked)"
    if n == "9":
        ok = write_data == ord("x") and wp_data_addr == 0
        return ok, f"write_data={write_data:#x}, wp_data_addr={wp_data_addr:#x}, want 0x78 and 0 (blocked)"
    ok = not steps
    return ok, f"{len(steps)} step exception(s), want none (ss_addr[0] == 0)"


def run_selftest(machine: Any) -> dict[str, tuple[bool, str]]:
    """Run every stage in order on vCPU 0, each judged on its own, even after a failure.

    Between stages KVM_RUN returns (GUEST_SYNC), i.e. a vcpu_put. The real test stops at its
    first failing assertion; see :func:`run_selftest_as_the_kernel_does` for that view.
    """
    from kvmdbg.arch.a64 import assemble

    out: dict[str, tuple[bool, str]] = {}
    for stage, src in SELFTEST_STAGES:
        prog = assemble(src)
        res = machine.run(prog, max_steps=10000)
        out[stage] = _judge(stage, prog, res)
        machine.vcpu_put()  # GUEST_SYNC: an exit to userspace, KVM_RUN returns
    return out


def run_selftest_as_the_kernel_does(machine: Any) -> dict[str, str]:
    """The selftest as the real ``debug-exceptions`` binary runs it: it stops at the first failure.

    Each stage's assertions are GUEST_ASSERTs: the first one that fails makes the guest report
    UCALL_ABORT and the test exits, so the stages after it never run. Returns, per stage,
    "pass", "fail" (the stage that aborted the run) or "not run".
    """
    from kvmdbg.arch.a64 import assemble

    out: dict[str, str] = {}
    failed = False
    for stage, src in SELFTEST_STAGES:
        if failed:
            out[stage] = "not run"
            continue
        prog = assemble(src)
        res = machine.run(prog, max_steps=10000)
        ok, _ = _judge(stage, prog, res)
        out[stage] = "pass" if ok else "fail"
        failed = not ok
        machine.vcpu_put()  # GUEST_SYNC (or UCALL_ABORT): KVM_RUN returns
    return out


@register("selftest-oslock")
def selftest_oslock(machine: Any) -> Observations:
    """The 5.18 selftest debug-exceptions.c, stages 1-10, in our own assembly: each stage on its own.

    "pass"/"fail" per stage, every stage run even after one fails (what each stage would do
    on its own). The real test aborts at its first failing GUEST_ASSERT: p2/p3 at stage 2,
    baseline/p1 at stage 7 (see :func:`run_selftest_as_the_kernel_does` and
    ``kvmdbg.teach.compare.selftest_run_table``).

    Upstream passes every stage on nVHE and VHE. Baseline and p1 fail stages 7-10 at
    enable_os_lock's assertion (OSLAR writes ignored, OSLSR reads 0x8). p2/p3 pass the OS Lock
    stages but fail 2-6: the vCPU resets locked (0xA), the guest's lock is in hardware
    and its unlock never reaches the stored OSLSR (the swapped-argument bug).
    """
    return {stage: "pass" if ok else "fail" for stage, (ok, _) in run_selftest(machine).items()}
