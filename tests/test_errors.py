"""Bad input gets a clear error that names the fix, and leaves the machine unchanged."""

from __future__ import annotations

import pytest

from kvmdbg import (
    VARIANTS,
    KvmdbgError,
    Machine,
    PatchError,
    RegisterValueError,
    UnknownRegisterError,
    VcpuIndexError,
)


@pytest.mark.parametrize("variant,needle", [
    ({"p2"}, "needs p1"),
    ({"p2", "p3"}, "needs p1"),
    ({"upstream", "p1"}, "cannot be mixed"),
    ({"p4"}, "unknown patch"),
    ("p5", "unknown variant"),
    ("", "unknown variant"),
    (42, "not int"),
])
def test_impossible_variants_raise_patch_error_saying_why(variant, needle):
    with pytest.raises(PatchError, match=needle):
        Machine(variant)
    assert issubclass(PatchError, ValueError)


def test_valid_patch_sets_are_accepted():
    # patch 3 alone (it touches only the ID register) is a different kernel from "p3" (p1+p2+p3)
    assert Machine({"p3"}).variant == "baseline+p3"
    assert Machine("baseline+p3").defn.patches == ("p3",)
    assert Machine({"p1", "p2"}).variant == "p2"
    assert Machine(["p1", "p2", "p3"]).variant == "p3"
    assert Machine({"upstream"}).variant == "upstream"
    assert Machine(set()).variant == "baseline"


def test_unknown_registers_suggest_close_names():
    m = Machine()
    before = m.snapshot()
    with pytest.raises(UnknownRegisterError, match="Did you mean OSLSR_EL1") as e:
        m.guest_read("oslsr_el")
    assert isinstance(e.value, KeyError)
    with pytest.raises(UnknownRegisterError):
        m.set_one_reg(0x1234, 0)
    assert m.snapshot() == before


@pytest.mark.parametrize("value,needle", [(-1, "negative"), (1 << 64, "wider than 64 bits"),
                                          ("1", "must be an integer"), (1.5, "must be an integer")])
def test_values_that_are_not_64_bit_unsigned_are_refused_before_anything_changes(value, needle):
    for variant in VARIANTS:
        m = Machine(variant)
        before, steps = m.snapshot(), len(m.trace)
        with pytest.raises(RegisterValueError, match=needle):
            m.guest_write("OSLAR_EL1", value)
        with pytest.raises(RegisterValueError, match=needle):
            m.set_one_reg("MDSCR_EL1", value)
        assert m.snapshot() == before and len(m.trace) == steps
        assert isinstance(RegisterValueError("x"), ValueError)


@pytest.mark.parametrize("call", [
    lambda m: m.guest_read("OSLSR_EL1", vcpu=1),
    lambda m: m.guest_write("OSLAR_EL1", 1, vcpu=-1),
    lambda m: m.vcpu_load(2),
    lambda m: m.vcpu_reg("OSLSR_EL1", vcpu=5),
    lambda m: m.reset_vcpu(vcpu="0"),
])
def test_a_vcpu_index_the_vm_does_not_have_names_the_valid_range(call):
    m = Machine("upstream")
    before = m.snapshot()
    with pytest.raises(VcpuIndexError, match="vcpu"):
        call(m)
    assert m.snapshot() == before


def test_machine_constructor_checks_its_arguments():
    with pytest.raises(VcpuIndexError):
        Machine(vcpus=0)
    with pytest.raises(ValueError, match="unknown CPU profile"):
        Machine(cpu="pentium")
    with pytest.raises(ValueError, match="trace"):
        Machine(trace=0)
    with pytest.raises(VcpuIndexError):
        Machine(aarch32=[3])


def test_bounded_traces_keep_only_the_most_recent_events_but_stay_exact():
    full = Machine("p2", vhe=True)
    ring = Machine("p2", vhe=True, trace=5)
    for m in (full, ring):
        for _ in range(5):
            m.guest_write("OSLAR_EL1", 1)
            m.vcpu_put()
    assert len(ring.trace) == 5
    tail = full.trace.to_dataframe()
    tail = tail[tail.step > tail.step.max() - 5].reset_index(drop=True)
    assert ring.trace.to_dataframe().reset_index(drop=True).equals(tail)


def test_trace_false_records_nothing():
    m = Machine("p2", trace=False)
    m.guest_write("OSLAR_EL1", 1)
    assert len(m.trace) == 0


def test_errors_are_kvmdbg_errors():
    for cls in (PatchError, UnknownRegisterError, RegisterValueError, VcpuIndexError):
        assert issubclass(cls, KvmdbgError)


def test_snapshot_diffs_name_value_changes_and_where_the_vcpu_went():
    m = Machine("p2", vhe=True)
    before = m.snapshot()
    m.vcpu_load()
    after_load = m.snapshot()
    at_load = {(c.location, c.register): (c.before, c.after) for c in before.diff(after_load)}
    assert at_load[("kvm", "loaded")] == (0, 1)
    assert at_load[("physical", "OSLSR_EL1")] == (0x8, 0xA)  # VHE: the guest's reset lock reaches the PE at load
    m.enter_guest()
    at_entry = {(c.location, c.register): (c.before, c.after) for c in after_load.diff(m.snapshot())}
    assert at_entry[("where", "in_guest")] == (0, 1)
    assert ("physical", "OSLSR_EL1") not in at_entry
