"""Patches as generic edits of named tables, and diff() of two definitions (issue 13, stage 2)."""

from __future__ import annotations

import pytest

from kvmdbg import Machine
from kvmdbg.kvm.api import Env, Params, kernel_name, models
from kvmdbg.kvm.context import Vcpu
from kvmdbg.kvm.definition import BASELINE, Patch, StepEdit, diff
from kvmdbg.kvm.switch import SWITCH_NAMES, SwitchStep, World
from kvmdbg.kvm.sys_regs import SysRegDesc
from kvmdbg.patches import PATCHES, resolve


def _patch(**edits: object) -> Patch:
    return Patch(name="probe", title="probe", summary="a test patch", message_id="<probe>", files=(), **edits)  # type: ignore[arg-type]


def _marker(w: World, vcpu: Vcpu) -> str:
    w.vm["marks"] += 1
    return "probe step ran"


def test_a_step_edit_inserts_replaces_and_removes_in_every_named_switch() -> None:
    step = SwitchStep("probe_fn", _marker)
    after = BASELINE.apply(_patch(steps=(StepEdit(("nvhe.enter", "vhe.enter"), "after", "__activate_traps", step),)))
    for name in ("nvhe.enter", "vhe.enter"):
        fns = [s.function for s in after.switch(name)]
        assert fns[fns.index("__activate_traps") + 1] == "probe_fn"
        assert len(fns) == len(BASELINE.switch(name)) + 1
    assert after.switch("nvhe.exit") == BASELINE.switch("nvhe.exit")
    before = BASELINE.apply(_patch(steps=(StepEdit(("nvhe.exit",), "before", "__guest_exit", step),)))
    assert before.switch("nvhe.exit")[0] is step
    gone = BASELINE.apply(_patch(steps=(StepEdit(("nvhe.exit",), "remove", "fixup_guest_exit"),)))
    assert "fixup_guest_exit" not in [s.function for s in gone.switch("nvhe.exit")]
    swapped = BASELINE.apply(_patch(steps=(StepEdit(("vhe.put",), "replace", "__sysreg_save_el1_state", step),)))
    assert [s.function for s in swapped.switch("vhe.put")] == ["deactivate_traps_vhe_put", "probe_fn",
                                                               "kvm_arch_vcpu_put"]


def test_a_step_edit_names_what_is_wrong() -> None:
    step = SwitchStep("probe_fn", _marker)
    with pytest.raises(ValueError, match="has no step 'nope'"):
        BASELINE.apply(_patch(steps=(StepEdit(("nvhe.enter",), "after", "nope", step),)))
    with pytest.raises(ValueError, match="no world switch 'nvhe.sideways'"):
        BASELINE.apply(_patch(steps=(StepEdit(("nvhe.sideways",), "after", "__guest_enter", step),)))
    with pytest.raises(ValueError, match="unknown operation"):
        BASELINE.apply(_patch(steps=(StepEdit(("nvhe.enter",), "around", "__guest_enter", step),)))


def test_the_world_switch_lists_follow_the_kernel_order() -> None:
    assert set(SWITCH_NAMES) == {f"{m}.{s}" for m in ("nvhe", "vhe") for s in ("load", "put", "enter", "exit")}
    assert [s.function for s in BASELINE.switch("nvhe.enter")] == [
        "kvm_arm_setup_debug", "__sysreg_save_state_nvhe", "__sysreg_restore_state_nvhe", "__activate_traps",
        "__debug_switch_to_guest", "__guest_enter"]
    assert [s.function for s in BASELINE.switch("vhe.exit")] == [
        "__guest_exit", "fixup_guest_exit", "sysreg_save_guest_state_vhe", "__deactivate_traps",
        "sysreg_restore_host_state_vhe", "__debug_switch_to_host", "kvm_arm_clear_debug"]


def test_an_inserted_step_runs_and_is_traced_and_per_vm_state_is_added(monkeypatch: pytest.MonkeyPatch) -> None:
    defn = BASELINE.apply(_patch(vm_state={"marks": 0}, functions={"probe_fn": "arch/arm64/kvm/probe.c"},
                                 steps=(StepEdit(("nvhe.enter",), "after", "__activate_traps",
                                                 SwitchStep("probe_fn", _marker)),)))
    import kvmdbg.machine as machine_module
    monkeypatch.setattr(machine_module, "resolve", lambda variant: defn)
    m = Machine("baseline")
    m.enter_guest()
    assert m.kvm.vm["marks"] == 1
    assert "probe_fn" in m.trace.functions()
    m.exit_guest()
    m.enter_guest()
    assert m.kvm.vm["marks"] == 2


def test_a_step_returning_none_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []

    def never(w: World, vcpu: Vcpu) -> None:
        ran.append(vcpu.index)
        return None

    defn = BASELINE.apply(_patch(steps=(StepEdit(("nvhe.enter",), "before", "__guest_enter",
                                                 SwitchStep("quiet_fn", never)),)))
    import kvmdbg.machine as machine_module
    monkeypatch.setattr(machine_module, "resolve", lambda variant: defn)
    m = Machine("baseline")
    m.enter_guest()
    assert ran == [0]
    assert "quiet_fn" not in m.trace.functions() and "__guest_enter" in m.trace.functions()


def test_hooks_are_replaced_or_wrapped_by_kernel_name() -> None:
    calls: list[str] = []

    def wrap(old):  # type: ignore[no-untyped-def]
        def setup(env: Env, vcpu: Vcpu) -> None:
            calls.append("wrapped")
            old(env, vcpu)
        return setup

    defn = BASELINE.apply(_patch(wraps={"kvm_arm_setup_mdcr_el2": wrap}))
    assert defn.setup_mdcr is not BASELINE.setup_mdcr
    with pytest.raises(ValueError, match="unknown hook"):
        _patch(hooks={"kvm_arm_teardown": lambda: None})
    with pytest.raises(ValueError, match="no hook 'nope' to wrap"):
        BASELINE.apply(_patch(wraps={"nope": wrap}))


def test_diff_names_every_kind_of_edit_in_kernel_names() -> None:
    @models("trap_probe")
    def trap_probe(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
        return True

    def undocumented(env: Env, vcpu: Vcpu, name: str) -> int:
        return 0

    patched = BASELINE.apply(_patch(
        sys_regs=(SysRegDesc("MDRAR_EL1", trap_probe, reg="MDRAR_EL1", reset="reset_val", val=0x1),),
        new_slots=(("DISR_EL1", "MDRAR_EL1"),),
        hooks={"read_id_reg": undocumented},
        vm_state={"marks": 0},
        steps=(StepEdit(("nvhe.enter",), "after", "__activate_traps", SwitchStep("probe_fn", _marker)),),
    ))
    lines = diff(BASELINE, patched)
    text = "\n".join(lines)
    assert "sys_reg_descs[MDRAR_EL1]: handler trap_raz_wi -> trap_probe" in text
    assert "context slot None -> MDRAR_EL1" in text
    assert "enum vcpu_sysreg: adds MDRAR_EL1 (index 26)" in text
    assert "world switch nvhe.enter: adds probe_fn" in text
    assert "read_id_reg: replaced by undocumented" in text  # a hook without a docstring
    assert "struct kvm_arch: adds marks" in text
    assert diff(patched, patched) == []


def test_diff_of_the_real_patches_reads_like_the_patch() -> None:
    p1 = diff(resolve("baseline"), resolve("p1"))
    assert "sys_reg_descs[OSLSR_EL1]: trap_oslsr_el1 rewritten" in p1[0]  # the kernel name, never trap_oslsr_el1_p1
    assert any("enum vcpu_sysreg: adds OSLSR_EL1 (index 26)" in line for line in p1)
    p2 = diff(resolve("p1"), resolve("p2"))
    assert any(line.startswith("sys_reg_descs[OSLAR_EL1]: handler trap_raz_wi -> trap_oslar_el1") for line in p2)
    assert any("reset reset_val(0x8) -> reset_val(0xa)" in line for line in p2)
    el1 = "__sysreg_save_el1_state/__sysreg_restore_el1_state: OSLSR_EL1 saved from"
    assert any(line.startswith(el1) for line in p2)
    up = diff(resolve("baseline"), resolve("upstream"))
    assert any(line.startswith("kvm_arm_setup_debug: 5.18") for line in up)
    assert any("set_user (default) -> set_oslsr_el1" in line for line in up)
    assert not any("_upstream" in line or "_p1" in line or "_p2" in line for line in p1 + p2 + up)


def test_handlers_carry_their_kernel_names() -> None:
    for patch in PATCHES.values():
        for d in patch.sys_regs:
            if d.access is not None:
                assert not kernel_name(d.access).endswith(("_p1", "_p2", "_p3", "_upstream", "_515"))


def test_a_dry_read_leaves_no_trace() -> None:
    """peek_guest_read runs the handler on a scratch vCPU and a DryEnv: nothing it writes survives."""
    def greedy(env: Env, vcpu: Vcpu, p: Params, r: SysRegDesc) -> bool:
        vcpu.ctxt.sys_regs["TTBR1_EL1"] = 0x1234
        vcpu.flags.add("SCRIBBLED")
        env.cpu_write("TTBR1_EL1", 0x5678)
        env.note("a note")
        env.inject_undefined(vcpu, "an undef")
        p.regval = 7
        return True

    m = Machine("baseline")
    vcpu = m.kvm.vcpus[0]
    before = (dict(vcpu.ctxt.sys_regs), set(vcpu.flags), m.physical("TTBR1_EL1"), dict(m.kvm.pending_undef))
    assert m.kvm.peek_guest_read(0, SysRegDesc("MDRAR_EL1", greedy)) == 7
    assert (dict(vcpu.ctxt.sys_regs), set(vcpu.flags), m.physical("TTBR1_EL1"), dict(m.kvm.pending_undef)) == before
    assert m.kvm.take_notes() == ""
