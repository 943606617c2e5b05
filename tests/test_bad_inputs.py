"""Every public call, fed the bad inputs of issue 12: a kvmdbg error of the expected builtin type, nothing changed.

Each case is (what is called, the bad input, the builtin a Python user would expect, a word the
message must contain). The error must be a :class:`~kvmdbg.KvmdbgError` *and* that builtin, and
the machine's snapshot and trace length must be what they were before the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import kvmdbg
from kvmdbg import KvmdbgError, Machine, assemble
from kvmdbg.arch.a64 import Program
from kvmdbg.teach import scenarios

NOP = assemble("nop")


def _program(**changes: Any) -> Program:
    fields = {"base": NOP.base, "words": NOP.words, "labels": NOP.labels, "lines": NOP.lines, "text": NOP.text}
    fields.update(changes)
    return Program(**fields)


# (name, call on a machine, expected builtin, word the message names)
MACHINE_CALLS: list[tuple[str, Callable[[Machine], Any], type[Exception], str]] = [
    ("guest_write bool value", lambda m: m.guest_write("OSLAR_EL1", True), TypeError, "bool"),
    ("guest_write str value", lambda m: m.guest_write("OSLAR_EL1", "1"), TypeError, "integer"),
    ("guest_write negative", lambda m: m.guest_write("OSLAR_EL1", -1), ValueError, "negative"),
    ("guest_write unknown reg", lambda m: m.guest_write("OSLAR", 1), KeyError, "OSLAR"),
    ("guest_read vcpu bool", lambda m: m.guest_read("OSLSR_EL1", vcpu=True), TypeError, "vcpu"),
    ("guest_read vcpu 99", lambda m: m.guest_read("OSLSR_EL1", vcpu=99), IndexError, "vcpu=99"),
    ("physical write-only", lambda m: m.physical("OSLAR_EL1"), ValueError, "OSLAR_EL1"),
    ("vcpu_reg vcpu str", lambda m: m.vcpu_reg("OSLSR_EL1", vcpu="0"), TypeError, "vcpu"),
    ("where vcpu 5", lambda m: m.where(5), IndexError, "vcpu=5"),
    ("guest_view reg None", lambda m: m.guest_view(None), KeyError, "None"),
    ("vcpu_load vcpu -1", lambda m: m.vcpu_load(-1), IndexError, "vcpu=-1"),
    ("begin unknown switch", lambda m: m.begin("vcpu_lod"), ValueError, "switch"),
    ("begin switch not str", lambda m: m.begin(3), TypeError, "switch"),
    ("step vcpu 99 while pending", lambda m: (m.begin("exit_guest"), m.step(vcpu=99)), IndexError, "vcpu=99"),
    ("run_to bad where", lambda m: m.run_to("guets"), ValueError, "where"),
    ("run_to where not str", lambda m: m.run_to(None), TypeError, "where"),
    ("get_one_reg not modelled", lambda m: m.get_one_reg(0x603000000013C080), LookupError, "not one the model has"),
    ("set_one_reg bool value", lambda m: m.set_one_reg("MDSCR_EL1", False), TypeError, "bool"),
    ("set_one_reg float value", lambda m: m.set_one_reg("MDSCR_EL1", 1.0), TypeError, "integer"),
    ("set_guest_debug hw_breakpoints None", lambda m: m.set_guest_debug(hw_breakpoints=None), TypeError,
     "hw_breakpoints"),
    ("set_guest_debug hw_breakpoints 5", lambda m: m.set_guest_debug(hw_breakpoints=5), TypeError, "hw_breakpoints"),
    ("set_guest_debug single_step 'yes'", lambda m: m.set_guest_debug(single_step="yes"), TypeError, "single_step"),
    ("set_guest_debug single_step 2", lambda m: m.set_guest_debug(single_step=2), TypeError, "single_step"),
    ("set_guest_debug too many", lambda m: m.set_guest_debug(hw_breakpoints=[4 * i for i in range(17)]),
     ValueError, "hw_breakpoints"),
    ("set_guest_debug unaligned", lambda m: m.set_guest_debug(hw_breakpoints=[0x80002]), ValueError, "aligned"),
    ("restore_vcpu not a mapping", lambda m: m.restore_vcpu([1, 2]), TypeError, "state"),
    ("run not a Program", lambda m: m.run("nop"), TypeError, "program"),
    ("run malformed words", lambda m: m.run(_program(words=("nop",))), ValueError, "words"),
    ("run words too wide", lambda m: m.run(_program(words=(1 << 32,))), ValueError, "words"),
    ("run bad base", lambda m: m.run(_program(base="0x80000")), ValueError, "base"),
    ("run unaligned base", lambda m: m.run(_program(base=0x80002)), ValueError, "base"),
    ("run max_steps 0", lambda m: m.run(NOP, max_steps=0), ValueError, "max_steps"),
    ("run max_steps bool", lambda m: m.run(NOP, max_steps=True), TypeError, "max_steps"),
]


@pytest.mark.parametrize("vhe", [False, True])
@pytest.mark.parametrize("variant", ["baseline", "p2", "upstream"])
@pytest.mark.parametrize("name,call,builtin,word", MACHINE_CALLS, ids=[c[0] for c in MACHINE_CALLS])
def test_bad_input_to_a_machine_call_is_a_kvmdbg_error_and_changes_nothing(variant, vhe, name, call, builtin, word):
    m = Machine(variant, vhe=vhe)
    m.guest_read("OSLSR_EL1")  # the vCPU is loaded and in the guest
    before, n = m.snapshot(), len(m.trace)
    with pytest.raises(KvmdbgError) as e:
        call(m)
    assert isinstance(e.value, builtin), f"{name}: {type(e.value).__mro__}"
    assert word in str(e.value), f"{name}: {e.value}"
    if name != "step vcpu 99 while pending":  # begin() itself records nothing either
        assert m.snapshot() == before and len(m.trace) == n, name
    else:
        assert m.snapshot() == before and len(m.trace) == n and m.in_progress


CONSTRUCTOR_CASES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"vhe": "no"}, TypeError, "vhe"),
    ({"vhe": 1}, TypeError, "vhe"),
    ({"vcpus": True}, TypeError, "vcpus"),
    ({"vcpus": 1.0}, TypeError, "vcpus"),
    ({"vcpus": 0}, IndexError, "vcpus=0"),
    ({"trace": -1}, ValueError, "trace"),
    ({"trace": "yes"}, TypeError, "trace"),
    ({"aarch32": 0}, TypeError, "aarch32"),
    ({"aarch32": {True}}, IndexError, "aarch32"),
    ({"aarch32": {3}}, IndexError, "aarch32"),
    ({"pmu": None}, TypeError, "pmu"),
    ({"cpu": "cortex-a99"}, ValueError, "cortex-a99"),
    ({"cpu": 57}, TypeError, "cpu"),
]


@pytest.mark.parametrize("kwargs,builtin,word", CONSTRUCTOR_CASES, ids=[repr(c[0]) for c in CONSTRUCTOR_CASES])
def test_bad_machine_arguments_are_kvmdbg_errors(kwargs, builtin, word):
    with pytest.raises(KvmdbgError) as e:
        Machine("p2", **kwargs)
    assert isinstance(e.value, builtin) and word in str(e.value), e.value


@pytest.mark.parametrize("variant,builtin", [(42, TypeError), ([1], TypeError), ({"p2"}, ValueError),
                                             ("p5", ValueError)])
def test_bad_variants_are_patch_errors_of_the_right_type(variant, builtin):
    with pytest.raises(kvmdbg.PatchError) as e:
        Machine(variant)
    assert isinstance(e.value, builtin)


def _two_args(a, b):  # a scenario with the wrong signature
    return {}


@pytest.mark.parametrize("args,kwargs,builtin,word", [
    (("oslock-toggle", None), {}, TypeError, "variants"),
    (("oslock-toggle", 42), {}, TypeError, "variants"),
    (("oslock-toggle", []), {}, ValueError, "empty"),
    ((_two_args, ["p2"]), {}, TypeError, "one Machine"),
    ((42, ["p2"]), {}, TypeError, "scenario"),
    (("oslock-toggle", ["p2"]), {"vhe": "yes"}, TypeError, "vhe"),
    (("oslock-toggle", ["p3", {"p1", "p2", "p3"}]), {}, ValueError, "twice"),
    (("nope", ["p2"]), {}, ValueError, "unknown scenario"),
])
def test_bad_compare_arguments_are_kvmdbg_errors(args, kwargs, builtin, word):
    with pytest.raises(KvmdbgError) as e:
        kvmdbg.compare(*args, **kwargs)
    assert isinstance(e.value, builtin) and word in str(e.value), e.value


def test_compare_keeps_two_different_kernels_that_used_to_share_a_name_apart():
    df = kvmdbg.compare("oslock-toggle", ["p3", {"p3"}])
    assert list(df.columns) == ["p3", "baseline+p3"]
    assert df.loc[("scenario", "OSLSR after lock"), "p3"] == 0xA
    assert df.loc[("scenario", "OSLSR after lock"), "baseline+p3"] == 0x8
    assert kvmdbg.compare("oslock-toggle", "p2").columns.tolist() == ["p2"]  # one name, not its letters


@pytest.mark.parametrize("variant,name", [({"p3"}, "baseline+p3"), ({"p1", "p3"}, "p1+p3"), ({"p1", "p2"}, "p2"),
                                          (set(), "baseline"), ({"p1", "p2-intended"}, "p2-intended"),
                                          ({"p1", "p2-intended", "p3"}, "p1+p2-intended+p3")])
def test_a_variant_name_is_unique_to_its_patch_set_and_round_trips(variant, name):
    m = Machine(variant)
    assert m.variant == name == m.defn.name
    assert Machine(name).defn.patches == m.defn.patches


@pytest.mark.parametrize("bad,builtin", [(42, TypeError), (None, TypeError), ("oslock", ValueError)])
def test_bad_scenario_names_are_scenario_errors(bad, builtin):
    with pytest.raises(kvmdbg.ScenarioError) as e:
        scenarios.get(bad)
    assert isinstance(e.value, builtin)


@pytest.mark.parametrize("args,builtin", [((None,), TypeError), (("nop", "0x80000"), TypeError),
                                          (("nop", True), TypeError), (("nop", -4), ValueError),
                                          (("nop", 2), ValueError), (("bogus x0",), ValueError)])
def test_bad_assembler_input_is_an_asm_error(args, builtin):
    with pytest.raises(kvmdbg.AsmError) as e:
        assemble(*args)
    assert isinstance(e.value, builtin)


def test_one_error_hierarchy():
    from kvmdbg.cpu.pe import ArchitecturalError
    from kvmdbg.cpu.profiles import get_profile

    assert issubclass(ArchitecturalError, KvmdbgError)
    with pytest.raises(KvmdbgError):
        get_profile("nope")


@pytest.mark.parametrize("vhe", [False, True])
@pytest.mark.parametrize("variant,call,err", [
    ("baseline", lambda m: m.get_one_reg("OSLSR_EL1"), "ENOENT"),  # no slot in 5.15
    ("baseline", lambda m: m.set_one_reg("OSLAR_EL1", 1), "ENOENT"),
    ("p3", lambda m: m.set_one_reg("ID_AA64DFR0_EL1", 0x6), "EINVAL"),  # __set_id_reg(): invariant
    ("upstream", lambda m: m.set_one_reg("OSLSR_EL1", 0x0), "EINVAL"),  # set_oslsr_el1()
])
def test_a_refused_ioctl_is_decided_before_anything_changes(variant, vhe, call, err):
    import errno

    m = Machine(variant, vhe=vhe)
    m.guest_read("OSLSR_EL1")  # running in the guest: a refusal must not exit or put it
    before, n = m.snapshot(), len(m.trace)
    with pytest.raises(OSError) as e:
        call(m)
    assert errno.errorcode[e.value.errno] == err
    assert m.snapshot() == before and len(m.trace) == n and m.where() == "guest"
