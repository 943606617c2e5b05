"""Property tests: random sequences of guest, KVM and userspace actions, checked after every action.

A sequence is drawn for one (variant, host mode, number of vCPUs) and applied to a fresh
:class:`~kvmdbg.Machine`. The actions are what a learner can do to a machine: guest accesses
to OSLAR_EL1 / OSLSR_EL1 / MDSCR_EL1 (including the architecturally UNDEFINED MRS OSLAR_EL1
and MSR OSLSR_EL1, and out-of-range values that must be refused before anything runs), the
world switch (exit/enter, put/load, ``step``), KVM_ARM_VCPU_INIT, KVM_SET_ONE_REG of
OSLSR_EL1 with valid and invalid values, and KVM_SET_GUEST_DEBUG.

Expected failures are part of the model's contract and are collected, not raised:
:class:`~kvmdbg.GuestFault` (the guest took an exception), :class:`OSError` (an ioctl was
refused) and :class:`~kvmdbg.KvmdbgError` (bad arguments). Anything else fails the test.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from facts import FACTS, UNLOCKED, variants_where
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmdbg import VARIANTS, GuestFault, KvmdbgError, Machine

Action = tuple[Any, ...]
Config = tuple[str, bool, int]
SETTINGS = settings(max_examples=60, deadline=None)
MAX_ACTIONS = 30
U64 = (1 << 64) - 1
FLOAT_EXACT = 1 << 53  # every integer below this is exact in a float64


# -- the strategy ----------------------------------------------------------------------------


def _actions(vcpus: int) -> st.SearchStrategy[Action]:
    v = st.integers(0, vcpus - 1)
    u64 = st.one_of(st.sampled_from([0, 1, 0x8000, 0xA000, 0x2001, U64]), st.integers(0, U64))
    oslsr = st.one_of(st.sampled_from([0x8, 0xA, 0x0, 0x2, 0x9, 0xB, 0x18, 0x1A]), st.integers(0, U64))
    address = st.integers(0, (1 << 48) - 1).map(lambda a: a & ~3)
    return st.one_of(
        st.tuples(st.just("guest_write"), st.just("OSLAR_EL1"), st.sampled_from([0, 1]), v),
        st.tuples(st.just("guest_read"), st.just("OSLSR_EL1"), v),
        st.tuples(st.just("guest_write"), st.just("MDSCR_EL1"), u64, v),
        st.tuples(st.just("guest_read"), st.just("MDSCR_EL1"), v),
        # UNDEFINED in the architecture (no such accessor): the PE faults, KVM never sees them.
        st.tuples(st.just("guest_read"), st.just("OSLAR_EL1"), v),
        st.tuples(st.just("guest_write"), st.just("OSLSR_EL1"), st.sampled_from([0, 2, 0xA]), v),
        # Refused before anything runs (RegisterValueError).
        st.tuples(st.just("guest_write"), st.sampled_from(["MDSCR_EL1", "OSLAR_EL1"]),
                  st.sampled_from([-1, 1 << 64]), v),
        st.tuples(st.sampled_from(["exit_guest", "enter_guest", "vcpu_put", "vcpu_load", "reset_vcpu", "step"]),
                  v),
        st.tuples(st.just("set_one_reg"), st.just("OSLSR_EL1"), oslsr, v),
        st.tuples(st.just("set_guest_debug"), st.lists(address, max_size=2), st.booleans(), v),
        st.tuples(st.just("set_guest_debug"), st.just([0x80002]), st.just(False), v),  # misaligned
    )


@st.composite
def scenarios(draw: st.DrawFn, variants: tuple[str, ...] = VARIANTS,
              modes: tuple[bool, ...] = (False, True)) -> tuple[Config, list[Action]]:
    variant = draw(st.sampled_from(variants))
    vhe = draw(st.sampled_from(modes))
    vcpus = draw(st.sampled_from([1, 2]))
    actions = draw(st.lists(_actions(vcpus), max_size=MAX_ACTIONS))
    return (variant, vhe, vcpus), actions


# -- running a sequence ----------------------------------------------------------------------


def apply(m: Machine, action: Action) -> BaseException | None:
    """Perform one action; return the expected exception it raised (or None)."""
    return perform(m, action)[0]


def perform(m: Machine, action: Action) -> tuple[BaseException | None, Any]:
    """Perform one action; return (the expected exception it raised or None, what it returned)."""
    kind, *args = action
    result: Any = None
    try:
        if kind == "guest_write":
            reg, value, vcpu = args
            m.guest_write(reg, value, vcpu=vcpu)
        elif kind == "guest_read":
            reg, vcpu = args
            result = m.guest_read(reg, vcpu=vcpu)
        elif kind == "set_one_reg":
            reg, value, vcpu = args
            m.set_one_reg(reg, value, vcpu=vcpu)
        elif kind == "set_guest_debug":
            bps, ss, vcpu = args
            m.set_guest_debug(hw_breakpoints=bps, single_step=ss, vcpu=vcpu)
        else:
            (vcpu,) = args
            getattr(m, kind)(vcpu)
    except (GuestFault, OSError, KvmdbgError) as exc:
        return exc, None
    return None, result


def run(config: Config, actions: list[Action],
        check: Callable[[Machine, Action | None, BaseException | None], None] | None = None) -> Machine:
    variant, vhe, vcpus = config
    m = Machine(variant, vhe=vhe, vcpus=vcpus)
    if check is not None:
        check(m, None, None)
    for action in actions:
        exc = apply(m, action)
        if check is not None:
            check(m, action, exc)
    return m


def physical_oslsr(m: Machine) -> int:
    return m.physical("OSLSR_EL1")


# -- invariants ------------------------------------------------------------------------------


# Which variants each property is about comes from tests/facts.py, so a new variant is covered
# by its row there. A property over several variants draws 40 sequences per variant (at least 60).
NEVER_SWITCHED = tuple(variants_where(lambda f: not f.pe_follows_guest))
NO_OSLSR_COPY = tuple(variants_where(lambda f: f.oslsr_slot is None))
SWITCHED_BACK_ON_NVHE = tuple(variants_where(lambda f: f.pe_follows_guest and not f.at(False).host_runs_locked))


def per_variant(variants: tuple[str, ...]) -> settings:
    return settings(SETTINGS, max_examples=max(SETTINGS.max_examples, 40 * len(variants)))


@per_variant(NEVER_SWITCHED)
@given(scenarios(variants=NEVER_SWITCHED))
def test_a_variant_that_does_not_switch_the_os_lock_never_changes_the_physical_one(
        case: tuple[Config, list[Action]]) -> None:
    def check(m: Machine, action: Action | None, exc: BaseException | None) -> None:
        assert physical_oslsr(m) == UNLOCKED, f"after {action}: physical OSLSR_EL1={physical_oslsr(m):#x}"

    run(*case, check=check)


@per_variant(NO_OSLSR_COPY)
@given(scenarios(variants=NO_OSLSR_COPY))
def test_a_guest_whose_kvm_keeps_no_oslsr_copy_always_sees_the_reset_value(
        case: tuple[Config, list[Action]]) -> None:
    (variant, vhe, vcpus), actions = case
    want = FACTS[variant].oslsr_reset
    m = Machine(variant, vhe=vhe, vcpus=vcpus)
    for n, action in enumerate(actions):
        perform(m, action)
        for i in range(vcpus):
            assert m.guest_view("OSLSR_EL1", i) == want, f"after {action}: vCPU {i}'s guest_view"
        # A real guest read too (it changes state, so it is part of the sequence).
        exc, value = perform(m, ("guest_read", "OSLSR_EL1", n % vcpus))
        assert exc is None and value == want, f"after {action}: vCPU {n % vcpus} reads {value!r} ({exc})"


@per_variant(SWITCHED_BACK_ON_NVHE)
@given(scenarios(variants=SWITCHED_BACK_ON_NVHE, modes=(False,)))
def test_nvhe_host_runs_unlocked_whenever_no_vcpu_is_in_the_guest(case: tuple[Config, list[Action]]) -> None:
    """nVHE switches the host's EL1 context (OSLSR included) on every entry and exit.

    The host's saved copy is taken from the PE at each entry, while the host runs: by induction
    it always holds OSLK=0 (clear_os_lock at boot). Nothing else writes the PE's OSLAR_EL1 on
    nVHE: a trapped guest OSLAR write and KVM_SET_ONE_REG change only the vCPU context, and
    reset/load/put/set_guest_debug touch no EL1 state. So whenever no vCPU is in the guest and
    no switch is half done, the PE's OS Lock is the host's: unlocked. (All vCPUs, not just
    vCPU 0: with two vCPUs, vCPU 1 in the guest carries its own lock while vCPU 0 is "host".)
    """
    def check(m: Machine, action: Action | None, exc: BaseException | None) -> None:
        idle = all(m.where(i) == "host" for i in range(len(m.kvm.vcpus))) and not m.in_progress
        if idle:
            assert physical_oslsr(m) & 2 == 0, f"after {action}: host runs with OSLSR_EL1={physical_oslsr(m):#x}"

    run(*case, check=check)


@SETTINGS
@given(scenarios())
def test_every_trace_event_names_a_function_and_its_file(case: tuple[Config, list[Action]]) -> None:
    m = run(*case)
    for ev in m.trace:
        assert ev.function, f"event {ev.step} has no function: {ev}"
        assert ev.file and ev.file != "(unknown)", f"event {ev.step} ({ev.function}) has no known file"


@SETTINGS
@given(scenarios())
def test_replaying_a_sequence_on_a_fresh_machine_gives_the_same_trace(case: tuple[Config, list[Action]]) -> None:
    first = run(*case)
    second = run(*case)
    assert [str(e) for e in first.trace] == [str(e) for e in second.trace]
    records = first.trace.to_records()
    assert records == second.trace.to_records()
    assert first.snapshot() == second.snapshot()
    pd.testing.assert_frame_equal(first.trace.to_dataframe(), second.trace.to_dataframe())


@pytest.mark.parametrize("value", [FLOAT_EXACT + 1, (1 << 63) - 1, U64])
def test_trace_dataframe_keeps_64_bit_values(value: int) -> None:
    m = Machine("baseline")
    m.guest_write("MDSCR_EL1", value)
    df = m.trace.to_dataframe()
    assert value in {int(v) for v in df["value"].dropna()}


def _prologue(action: Action, exc: BaseException, running: bool, loaded: bool, trapped: bool) -> list[Action]:
    """What a failing call may do before it fails (documented in Machine), as actions.

    * A guest access (GuestFault) first enters the guest if the vCPU is not running there; an
      access that traps and that KVM refuses (an injected UNDEF) also makes one exit/enter trip.
    * A userspace ioctl the kernel refuses (OSError: ENOENT, EINVAL) is decided before KVM_RUN
      returns or the vCPU is put (issue 12): no prologue.
    * Bad arguments (any other KvmdbgError) are refused before anything runs: no prologue.
    """
    vcpu = action[-1]
    if isinstance(exc, GuestFault):
        out = [] if running else [("enter_guest", vcpu)]
        return out + ([("exit_guest", vcpu), ("enter_guest", vcpu)] if trapped else [])
    return []


@SETTINGS
@given(scenarios())
def test_a_failing_call_changes_nothing_but_its_documented_prologue_and_failure_events(
        case: tuple[Config, list[Action]]) -> None:
    """After GuestFault/OSError/KvmdbgError, the snapshot equals that of a twin machine that ran
    only the call's documented prologue (``_prologue``): values, where and loaded are equal, and
    so is the step count, except that a GuestFault adds its own events to the trace (the access,
    ending with "guest exception"). Bad arguments change nothing at all, trace included. The
    earlier Snapshot object is never mutated. The twin then performs the same failing call itself,
    which must change no watched value, and the two machines are back in sync."""
    config, actions = case
    variant, vhe, vcpus = config
    m = Machine(variant, vhe=vhe, vcpus=vcpus)
    twin = Machine(variant, vhe=vhe, vcpus=vcpus)
    for k, action in enumerate(actions):
        before = m.snapshot()
        frozen = copy.deepcopy(before)
        n_before = len(m.trace)
        vcpu = action[-1]
        running, loaded = m.where(vcpu) == "guest", m.loaded(vcpu)
        exc = apply(m, action)
        assert before == frozen, f"{action} mutated an earlier Snapshot"
        if exc is None:
            assert apply(twin, action) is None
            continue
        new = [e.function for e in list(m.trace)[n_before:]]
        trapped = isinstance(exc, GuestFault) and "handle_exit" in new
        for p in _prologue(action, exc, running, loaded, trapped):
            assert apply(twin, p) is None
        after, expected = m.snapshot(), twin.snapshot()
        why = f"{action} raised {type(exc).__name__}: {exc}"
        assert after.values == expected.values, (why, [str(c) for c in expected.diff(after)])
        assert (after.where, after.loaded) == (expected.where, expected.loaded), why
        if isinstance(exc, GuestFault):
            assert after.step > expected.step and new[-1] == "guest exception", (why, new)
        else:
            assert after.step == expected.step, (why, new)
            if not isinstance(exc, OSError):
                assert new == [] and after == before, why
        # The twin repeats the failing call, now with no prologue left to run.
        twin_before = twin.snapshot()
        twin_exc = apply(twin, action)
        assert type(twin_exc) is type(exc), (why, twin_exc)
        twin_after = twin.snapshot()
        assert twin_after.values == twin_before.values, (why, [str(c) for c in twin_before.diff(twin_after)])
        assert (twin_after.where, twin_after.loaded) == (twin_before.where, twin_before.loaded), why
        if trapped:  # the twin made one extra exit/enter trip: rebuild it from the sequence
            twin = run(config, actions[: k + 1])
        assert twin.snapshot() == m.snapshot(), (why, "twin out of sync after the failing call")
