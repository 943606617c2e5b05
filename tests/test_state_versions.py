"""Versioned register files: every view of the machine (guest_view, snapshot, trace) agrees with its state.

The guest-view cache once had a hand-written list of what a view depends on; a patch that gave
one more watched register a vCPU slot made ``guest_view()`` and the trace disagree (issue 13).
These tests build such a patch and check the views after every kind of change.
"""

from __future__ import annotations

import copy

import pytest

from kvmdbg import VARIANTS, Machine
from kvmdbg.kvm.definition import BASELINE, Patch
from kvmdbg.kvm.sys_regs import Params, SysRegDesc, vcpu_read_sys_reg, vcpu_write_sys_reg
from kvmdbg.versioned import MISSING


def trap_osdlr_el1_stored(kvm, vcpu, p: Params, r: SysRegDesc) -> bool:  # type: ignore[no-untyped-def]
    """A made-up handler: OSDLR_EL1 kept in its own vCPU slot, as patch 1 keeps OSLSR_EL1."""
    if p.is_write:
        vcpu_write_sys_reg(kvm, vcpu, p.regval, "OSDLR_EL1")
    else:
        p.regval = vcpu_read_sys_reg(kvm, vcpu, "OSDLR_EL1")
    return True


OSDLR_SLOT = Patch(
    name="osdlr-slot", title="test: OSDLR_EL1 gets a vCPU slot", summary="A patch for this test only.",
    message_id="", files=(), new_slots=(("DISR_EL1", "OSDLR_EL1"),),
    sys_regs=(SysRegDesc("OSDLR_EL1", trap_osdlr_el1_stored, reg="OSDLR_EL1", reset="reset_val", val=0),),
)


def _last_state(m: Machine) -> dict[tuple[str, str, int], int | None]:
    state: dict[tuple[str, str, int], int | None] = dict(m.trace.base)
    for e in m.trace:
        state.update(e.changes)
    return state


def _agree(m: Machine, reg: str, vcpu: int = 0) -> int | None:
    view = m.guest_view(reg, vcpu)
    assert m.snapshot().get("guest_view", reg, vcpu) == view
    assert _last_state(m)[("guest_view", reg, vcpu)] == view
    return view


@pytest.mark.parametrize("vhe", [False, True])
def test_a_new_slot_for_a_watched_register_is_seen_by_view_snapshot_and_trace_alike(vhe: bool) -> None:
    m = Machine(BASELINE.apply(OSDLR_SLOT), vhe=vhe)
    assert m.variant == "osdlr-slot" and "OSDLR_EL1" in m.defn.vcpu_sysreg
    m.enter_guest()
    m.vcpu_put()
    assert _agree(m, "OSDLR_EL1") == 0
    m.set_one_reg("OSDLR_EL1", 1)
    assert m.vcpu_reg("OSDLR_EL1") == 1
    assert _agree(m, "OSDLR_EL1") == 1
    m.guest_write("OSDLR_EL1", 0)  # enters, traps, handler stores 0
    assert _agree(m, "OSDLR_EL1") == 0
    m.exit_guest()
    m.set_one_reg("OSDLR_EL1", 1)
    assert _agree(m, "OSDLR_EL1") == 1


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("vhe", [False, True])
def test_views_are_those_of_a_machine_that_caches_nothing(variant: str, vhe: bool) -> None:
    """At every step of a mixed sequence on 3 vCPUs, each recorded guest view is recomputed from scratch."""
    m = Machine(variant, vhe=vhe, vcpus=3)
    actions = [
        lambda: m.guest_write("OSLAR_EL1", 1, vcpu=1), lambda: m.guest_read("OSLSR_EL1", vcpu=2),
        lambda: m.set_one_reg("OSLSR_EL1", 0xA, vcpu=0), lambda: m.guest_write("MDSCR_EL1", 0x8000, vcpu=0),
        lambda: m.vcpu_put(0), lambda: m.set_guest_debug([0x80000], True, vcpu=2),
        lambda: m.guest_read("MDSCR_EL1", vcpu=2), lambda: m.reset_vcpu(1), lambda: m.vcpu_load(1),
        lambda: m.step(1), lambda: m.step(1), lambda: m.guest_write("OSLAR_EL1", 0, vcpu=1),
    ]
    for act in actions:
        try:
            act()
        except OSError:
            pass
        except Exception as e:  # noqa: BLE001 - GuestFault is part of the story
            assert type(e).__name__ == "GuestFault", e
        state = _last_state(m)
        for i in range(3):
            for reg in ("OSLSR_EL1", "OSDLR_EL1", "MDSCR_EL1"):
                fresh = m.guest_view(reg, i)
                assert state[("guest_view", reg, i)] == fresh, (act, i, reg)
                assert m.snapshot().get("guest_view", reg, i) == fresh


def test_snapshot_values_are_read_only_and_survive_deepcopy() -> None:
    m = Machine("p2")
    snap = m.snapshot()
    with pytest.raises(TypeError):
        snap.values[("physical", "OSLSR_EL1", -1)] = 0  # type: ignore[index]
    assert copy.deepcopy(snap) == snap
    m.guest_write("OSLAR_EL1", 1)
    assert m.snapshot() != snap and snap == copy.deepcopy(snap)


def test_trace_states_are_distinct_read_only_mappings() -> None:
    m = Machine("p2")
    m.enter_guest()
    states = [state for _e, state in m.trace.states()]
    assert len({id(s) for s in states}) == len(states)
    assert states[0] != states[-1]
    with pytest.raises(TypeError):
        states[0][("physical", "OSLSR_EL1", -1)] = 0  # type: ignore[index]


@pytest.mark.parametrize("vhe", [False, True])
@pytest.mark.parametrize("switch", ["vcpu_load", "enter_guest", "exit_guest", "vcpu_put"])
def test_stepping_a_switch_stops_exactly_after_its_last_function(vhe: bool, switch: str) -> None:
    """Machine.step() ends a switch where the whole operation ends: the same functions, one at a time."""
    whole = Machine("p2", vhe=vhe)
    stepped = Machine("p2", vhe=vhe)
    prepare = {"vcpu_load": [], "enter_guest": ["vcpu_load"], "exit_guest": ["enter_guest"],
               "vcpu_put": ["enter_guest", "exit_guest"]}[switch]
    for name in prepare:
        getattr(whole, name)()
        getattr(stepped, name)()
    functions = [e.function for e in getattr(whole, switch)()]
    stepped.begin(switch)
    seen = []
    while stepped.in_progress:
        ev = stepped.step()
        assert ev is not None
        seen.append(ev.function)
    assert seen == functions
    assert stepped.snapshot().values == whole.snapshot().values


# -- the containers ------------------------------------------------------------------------------

def test_every_kind_of_write_counts_and_reads_do_not() -> None:
    from kvmdbg.versioned import VersionedDict, VersionedList, VersionedSet

    d = VersionedDict(a=1)
    writes = [lambda: d.__setitem__("b", 2), lambda: d.update(c=3), lambda: d.setdefault("e", 5),
              lambda: d.pop("a"), lambda: d.__delitem__("b"), lambda: d.__ior__({"f": 6}), d.popitem, d.clear]
    for w in writes:
        before = d.version
        w()
        assert d.version > before, w
    before = d.version
    _ = (d.get("x"), "x" in d, list(d), len(d), dict(d))
    assert d.version == before

    seq = VersionedList([0] * 4)
    for w in [lambda: seq.__setitem__(1, 5), lambda: seq.__setitem__(slice(0, 2), [7, 7]), lambda: seq.append(1),
              lambda: seq.extend([2]), lambda: seq.insert(0, 3), seq.pop, lambda: seq.remove(3), seq.sort,
              seq.reverse, lambda: seq.__iadd__([1]), lambda: seq.__delitem__(0), seq.clear]:
        before = seq.version
        w()
        assert seq.version > before, w

    flags = VersionedSet()
    for w in [lambda: flags.add("A"), lambda: flags.update({"B"}), lambda: flags.discard("A"),
              lambda: flags.__ior__({"C"}), lambda: flags.__isub__({"C"}), flags.pop, flags.clear]:
        before = flags.version
        w()
        assert flags.version > before, w


def test_a_plain_container_assigned_to_a_state_object_becomes_versioned_and_is_watched() -> None:
    from kvmdbg.versioned import VersionedSet

    m = Machine("p2")
    v = m.kvm.vcpus[0]
    v.flags = {"KVM_ARM64_DEBUG_DIRTY"}  # what a rewritten runtime might do
    assert isinstance(v.flags, VersionedSet)
    m._rec.changes()
    v.flags.discard("KVM_ARM64_DEBUG_DIRTY")
    assert 0 in m._rec._dirty


def test_tracking_restores_the_containers_classes_even_when_the_computation_fails() -> None:
    from kvmdbg.versioned import VersionedDict, track

    d = VersionedDict(a=1)

    def boom() -> None:
        _ = d["a"]
        raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError):
        track([d], boom)
    assert type(d) is VersionedDict
    value, deps = track([d], lambda: d.get("a", 0) + d.get("b", 0))
    assert value == 1 and [(dep.key, dep.value) for dep in deps] == [("a", 1), ("b", MISSING)]


def test_a_trapped_access_recomputes_the_same_views_with_8_vcpus_as_with_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recording does not grow with the vCPU count: the other vCPUs' views are not recomputed."""
    import kvmdbg.recorder

    counts = []
    for vcpus in (1, 8):
        m = Machine("upstream", vcpus=vcpus)
        m.enter_guest()
        m.guest_read("OSLSR_EL1")
        calls: list[int] = []
        real = kvmdbg.recorder.track
        monkeypatch.setattr(kvmdbg.recorder, "track", lambda *a, _real=real, _calls=calls: (_calls.append(1),
                                                                                            _real(*a))[1])
        for _ in range(5):
            m.guest_read("OSLSR_EL1")
        monkeypatch.undo()
        counts.append(len(calls))
    assert counts[0] == counts[1] and counts[0] <= 5 * 3


def _random_action(m: Machine, rnd: object, i: int) -> None:
    import random

    assert isinstance(rnd, random.Random)
    k = rnd.randrange(10)
    if k == 0:
        m.guest_write("OSLAR_EL1", rnd.randrange(2), vcpu=i)
    elif k == 1:
        m.guest_read("OSLSR_EL1", vcpu=i)
    elif k == 2:
        m.guest_write("MDSCR_EL1", rnd.choice([0, 0x8000, 0xA001]), vcpu=i)
    elif k == 3:
        m.set_one_reg("OSLSR_EL1", rnd.choice([0x8, 0xA, 0x18]), vcpu=i)
    elif k == 4:
        m.set_guest_debug([0x80000] * rnd.randrange(2), rnd.random() < .5, vcpu=i)
    else:
        getattr(m, ("vcpu_put", "vcpu_load", "exit_guest", "step", "reset_vcpu")[k - 5])(i)


@pytest.mark.parametrize("seed", range(6))
def test_random_sequences_record_the_views_a_fresh_computation_gives(seed: int) -> None:
    import random

    from kvmdbg import GuestFault, KvmdbgError

    rnd = random.Random(seed)
    variant = VARIANTS[seed % len(VARIANTS)]
    m = Machine(variant, vhe=bool(seed & 1), vcpus=3)
    for _ in range(40):
        try:
            _random_action(m, rnd, rnd.randrange(3))
        except (GuestFault, OSError, KvmdbgError):
            pass
        state = _last_state(m)
        for j in range(3):
            for reg in ("OSLSR_EL1", "OSDLR_EL1", "MDSCR_EL1"):
                assert state[("guest_view", reg, j)] == m.guest_view(reg, j), (seed, j, reg)


@pytest.mark.parametrize("seed", range(4))
def test_an_untraced_machine_ends_in_the_state_a_traced_one_records(seed: int) -> None:
    """Untraced machines keep plain containers and no cache; their snapshots agree with a traced twin's."""
    import random

    from kvmdbg import GuestFault, KvmdbgError

    variant = VARIANTS[(seed * 3) % len(VARIANTS)]
    traced, untraced = Machine(variant, vcpus=2, vhe=bool(seed & 1)), Machine(variant, vcpus=2, vhe=bool(seed & 1),
                                                                                trace=False)
    assert type(untraced.pe.regs) is dict and type(traced.pe.regs) is not dict
    for m in (traced, untraced):
        rnd = random.Random(seed)
        for _ in range(30):
            try:
                _random_action(m, rnd, rnd.randrange(2))
            except (GuestFault, OSError, KvmdbgError):
                pass
    a, b = traced.snapshot(), untraced.snapshot()
    assert a.values == b.values and a.step == b.step and (a.where, a.loaded) == (b.where, b.loaded)
    assert dict(_last_state(traced)) == dict(a.values)
