"""BRIEF.md section 5, fact by fact, through the public API, per variant and host mode.

The shared tests run over every variant and both nVHE and VHE and take what they expect
from the one table of per-variant facts, tests/facts.py; the variant-only tests after them
tell one variant's story in more detail. Where the sources disagree with BRIEF.md (patch 2's
OSLAR handler), the facts follow the sources and say so.
"""

from __future__ import annotations

import errno

import pytest
from facts import FACTS, LOCKED, MODE_IDS, MODES, UNLOCKED, Facts, SetOslsr, after_oslar, facts, variants_where

from kvmdbg import VARIANTS, GuestFault, Machine, reg_id
from kvmdbg.arch.registers import REGISTERS

DFR0 = REGISTERS["ID_AA64DFR0_EL1"]
OSLK = 0x2


@pytest.fixture(params=VARIANTS)
def variant(request):
    return request.param


@pytest.fixture(params=MODES, ids=MODE_IDS)
def vhe(request):
    return request.param


@pytest.fixture
def f(variant, vhe) -> Facts:
    """The facts of this variant in this host mode (tests/facts.py)."""
    return facts(variant, vhe)


# -- the table itself ---------------------------------------------------------------


def test_every_variant_has_one_row_of_facts():
    # A new variant in kvmdbg.VARIANTS needs its row in tests/facts.py: the shared tests read it.
    missing = [v for v in VARIANTS if v not in FACTS]
    assert missing == [], f"add a Facts(...) row for {missing} to tests/facts.py"
    assert list(FACTS) == list(VARIANTS), "one row per variant, in the order of kvmdbg.VARIANTS"


def test_every_row_names_its_source_and_gives_a_selftest_letter_per_stage():
    from kvmdbg.teach.scenarios import SELFTEST_STAGES

    for variant in VARIANTS:
        assert FACTS[variant].source.strip(), variant
        for vhe in MODES:
            letters = facts(variant, vhe).selftest
            assert len(letters) == len(SELFTEST_STAGES) and set(letters) <= {"P", "F"}, (variant, vhe)


# -- boot -------------------------------------------------------------------------


def test_a_fresh_machine_has_the_host_unlocked_after_boot(variant, vhe):
    m = Machine(variant, vhe=vhe)
    assert m.physical("OSLSR_EL1") == 0x8
    assert m.physical("OSDLR_EL1") == 0
    functions = m.trace.functions()
    assert functions[:2] == ["cold reset", "clear_os_lock"]
    cold = m.trace.to_dataframe()
    first = cold[(cold.step == 1) & (cold.location == "physical") & (cold.register == "OSLSR_EL1")]
    assert int(first.value.iloc[0]) == 0xA  # OSLK is 1 after a cold reset


def test_machine_reports_variant_and_host_mode(variant, vhe):
    m = Machine(variant, vhe=vhe)
    assert (m.variant, m.vhe) == (variant, vhe)


# -- reset values and guest reads ----------------------------------------------------


def test_guest_reads_of_oslsr_after_reset_match_the_variant(variant, vhe, f):
    m = Machine(variant, vhe=vhe)
    assert m.guest_read("OSLSR_EL1") == f.oslsr_reset
    assert m.vcpu_reg("OSLSR_EL1") == f.oslsr_slot


def test_oslsr_is_listed_for_userspace_where_the_variant_keeps_a_copy(variant):
    f = facts(variant, vhe=False)
    m = Machine(variant)
    assert (reg_id("OSLSR_EL1") in m.get_reg_list()) is f.oslsr_listed
    if f.oslsr_listed:
        assert m.get_one_reg("OSLSR_EL1") == f.oslsr_slot
    else:
        with pytest.raises(OSError) as e:
            m.get_one_reg("OSLSR_EL1")
        assert e.value.errno == errno.ENOENT


@pytest.mark.parametrize("reg", ["OSDLR_EL1", "DBGPRCR_EL1"])
def test_osdlr_and_dbgprcr_are_raz_wi_for_the_guest(variant, vhe, reg):
    m = Machine(variant, vhe=vhe)
    m.guest_write(reg, 1)
    assert m.guest_read(reg) == 0
    assert m.physical(reg) == 0


def test_mdrar_reads_as_zero(variant, vhe):
    assert Machine(variant, vhe=vhe).guest_read("MDRAR_EL1") == 0


def test_tdosa_is_set_whenever_the_guest_runs_so_os_lock_accesses_trap(variant, vhe):
    m = Machine(variant, vhe=vhe)
    m.enter_guest()
    assert m.physical("MDCR_EL2") & (1 << 10)
    m.guest_read("OSLSR_EL1")
    assert "kvm_handle_sys_reg" in m.trace.functions()


def test_id_aa64dfr0_as_the_guest_sees_it(variant, vhe, f):
    m = Machine(variant, vhe=vhe)
    dfr0 = m.guest_read("ID_AA64DFR0_EL1")
    assert (DFR0.get(dfr0, "DebugVer"), DFR0.get(dfr0, "DoubleLock")) == f.dfr0
    assert DFR0.get(dfr0, "PMSVer") == 0  # SPE hidden
    assert DFR0.get(dfr0, "PMUVer") <= 5  # capped at PMUv3 for Armv8.4


def test_pmuver_is_zero_without_a_vcpu_pmu(variant):
    m = Machine(variant, pmu=False)
    assert DFR0.get(m.guest_read("ID_AA64DFR0_EL1"), "PMUVer") == 0


def test_id_registers_are_invariant_for_userspace(variant):
    m = Machine(variant)
    value = m.get_one_reg("ID_AA64DFR0_EL1")
    m.set_one_reg("ID_AA64DFR0_EL1", value)  # the same value is fine
    with pytest.raises(OSError) as e:
        m.set_one_reg("ID_AA64DFR0_EL1", value ^ 0x1)
    assert e.value.errno == errno.EINVAL


def test_restoring_the_id_register_a_baseline_kernel_saved_does_what_the_variant_says(variant, f):
    # The migration objection to patch 3 (Re: [PATCH 3/3]): a VM saved on 5.15 carries DebugVer 6.
    old = Machine("baseline").get_one_reg("ID_AA64DFR0_EL1")
    m = Machine(variant)
    if f.baseline_dfr0_errno is None:
        m.set_one_reg("ID_AA64DFR0_EL1", old)
        assert m.get_one_reg("ID_AA64DFR0_EL1") == old
    else:
        with pytest.raises(OSError) as e:
            m.set_one_reg("ID_AA64DFR0_EL1", old)
        assert e.value.errno == f.baseline_dfr0_errno


def _set_dfr0(m: Machine, value: int, want: int | None, vcpu: int = 0) -> None:
    if want is None:
        m.set_one_reg("ID_AA64DFR0_EL1", value, vcpu=vcpu)
        return
    before = m.get_one_reg("ID_AA64DFR0_EL1", vcpu=vcpu)
    with pytest.raises(OSError) as e:
        m.set_one_reg("ID_AA64DFR0_EL1", value, vcpu=vcpu)
    assert e.value.errno == want
    assert m.get_one_reg("ID_AA64DFR0_EL1", vcpu=vcpu) == before  # a refusal changes nothing


def test_what_userspace_may_write_to_id_aa64dfr0_before_and_after_the_vm_runs(variant, vhe, f):
    lower_before, lower_after, raise_debugver = f.dfr0_set
    m = Machine(variant, vhe=vhe, vcpus=2)
    value = m.get_one_reg("ID_AA64DFR0_EL1")
    assert DFR0.get(value, "PMUVer") == 1 and DFR0.get(value, "DebugVer") == f.dfr0[0]  # Cortex-A57, PMUv3
    lowered = DFR0.set(value, "PMUVer", 0)
    _set_dfr0(m, lowered, lower_before)
    if lower_before is None:  # one value per VM: the other vCPU, and its guest, see it too
        assert m.get_one_reg("ID_AA64DFR0_EL1", vcpu=1) == lowered
        assert m.guest_read("ID_AA64DFR0_EL1", vcpu=1) == lowered
    _set_dfr0(Machine(variant, vhe=vhe), DFR0.set(value, "DebugVer", f.dfr0[0] + 1), raise_debugver)
    ran = Machine(variant, vhe=vhe)
    ran.guest_read("ID_AA64DFR0_EL1")  # KVM_RUN once
    _set_dfr0(ran, lowered, lower_after)
    ran.set_one_reg("ID_AA64DFR0_EL1", value)  # the value it already has is always accepted


def test_on_a_debug_v8_2_host_what_the_guest_is_told_and_whether_a_baseline_save_restores(variant, vhe, f):
    debugver, restore_errno = f.dfr0_a76
    m = Machine(variant, vhe=vhe, cpu="cortex-a76")
    assert DFR0.get(m.guest_read("ID_AA64DFR0_EL1"), "DebugVer") == debugver
    saved = Machine("baseline", vhe=vhe, cpu="cortex-a76").get_one_reg("ID_AA64DFR0_EL1")
    _set_dfr0(Machine(variant, vhe=vhe, cpu="cortex-a76"), saved, restore_errno)


def test_restoring_a_vcpu_a_baseline_kernel_saved_refuses_only_what_the_variant_refuses(variant, vhe, f):
    refused = Machine(variant, vhe=vhe).restore_vcpu(Machine("baseline", vhe=vhe).save_vcpu())
    want = [] if f.baseline_dfr0_errno is None else [("ID_AA64DFR0_EL1", f.baseline_dfr0_errno)]
    assert [(name, err) for name, _, err, _ in refused] == want


# -- the architecture decides some accesses before KVM does ---------------------------------


def test_reading_oslar_is_undefined_in_every_variant(variant, vhe):
    # OSLAR_EL1 has no MRS accessor: the PE takes the UNDEF at the guest's EL1.
    m = Machine(variant, vhe=vhe)
    with pytest.raises(GuestFault) as e:
        m.guest_read("OSLAR_EL1")
    assert e.value.ec == 0x00


def test_writing_oslsr_is_undefined_in_every_variant(variant, vhe, f):
    m = Machine(variant, vhe=vhe)
    with pytest.raises(GuestFault) as e:
        m.guest_write("OSLSR_EL1", 0)
    assert e.value.ec == 0x00
    assert m.guest_read("OSLSR_EL1") == f.oslsr_reset


# -- the guest's OSLAR writes, the stored OSLK and the PE ------------------------------------


def test_guest_oslar_writes_move_the_stored_oslk_only_where_the_variant_lets_them(variant, vhe, f):
    locked, unlocked = after_oslar(f)
    m = Machine(variant, vhe=vhe)
    m.guest_write("OSLAR_EL1", 1)
    assert m.guest_read("OSLSR_EL1") == locked
    assert m.vcpu_reg("OSLSR_EL1") == (None if f.oslsr_slot is None else locked)
    m.vcpu_put()
    m.guest_write("OSLAR_EL1", 1)  # loads the vCPU again first
    assert m.guest_read("OSLSR_EL1") == locked
    m.vcpu_put()
    m.vcpu_load()
    assert m.guest_read("OSLSR_EL1") == locked  # the lock survives a put and a load
    m.guest_write("OSLAR_EL1", 0)
    assert m.guest_read("OSLSR_EL1") == unlocked


def test_the_pe_carries_the_guests_lock_only_where_the_variant_switches_it(variant, vhe, f):
    m = Machine(variant, vhe=vhe)
    m.enter_guest()
    # the vCPU's reset value, now real on the PE (p2: "the guest resets locked, and that lock is real")
    assert m.physical("OSLSR_EL1") == (f.oslsr_reset if f.pe_follows_guest else UNLOCKED)
    m.guest_write("OSLAR_EL1", 1)  # "the guest locks"
    assert m.physical("OSLSR_EL1") == (LOCKED if f.pe_follows_guest else UNLOCKED)
    held = LOCKED if f.host_runs_locked else UNLOCKED  # nVHE: the host's value comes back on exit
    m.exit_guest()
    assert m.physical("OSLSR_EL1") == held  # VHE: the host runs locked while the vCPU is loaded ...
    assert m.host_reg("OSLSR_EL1") == f.host_oslsr
    m.vcpu_put()
    assert m.physical("OSLSR_EL1") == held  # ... and still after vcpu_put
    assert m.host_reg("OSLSR_EL1") == f.host_oslsr  # VHE: nothing of the host's was saved


@pytest.mark.parametrize("variant", variants_where(lambda f: not f.pe_follows_guest))
def test_a_variant_that_does_not_switch_the_os_lock_never_changes_the_pes(variant, vhe):
    m = Machine(variant, vhe=vhe)
    for action in (lambda: m.guest_write("OSLAR_EL1", 1), lambda: m.guest_write("OSLAR_EL1", 0),
                   lambda: m.guest_write("OSLAR_EL1", 1), m.exit_guest, m.vcpu_put, m.enter_guest,
                   lambda: m.guest_write("OSLAR_EL1", 0), lambda: m.guest_write("OSLAR_EL1", 1), m.vcpu_put):
        action()
        assert m.physical("OSLSR_EL1") == UNLOCKED
    assert "clear_os_lock" in m.trace.functions()


# -- userspace and OSLSR_EL1 -------------------------------------------------------------------


def test_a_userspace_set_of_oslsr_does_what_the_variant_says(variant, vhe, f):
    m = Machine(variant, vhe=vhe)
    if f.oslsr_set is SetOslsr.NOT_A_REGISTER:
        with pytest.raises(OSError) as e:
            m.set_one_reg("OSLSR_EL1", LOCKED)
        assert e.value.errno == errno.ENOENT
    elif f.oslsr_set is SetOslsr.ANY_VALUE:  # patch 1: no validation of the value
        m.set_one_reg("OSLSR_EL1", 0xDEADBEEF)
        assert m.get_one_reg("OSLSR_EL1") == 0xDEADBEEF
    else:  # SetOslsr.OSLK_ONLY
        m.set_one_reg("OSLSR_EL1", LOCKED)
        assert m.guest_read("OSLSR_EL1") == LOCKED
        for bad in (0x0, 0x9, 0xB, 0x1A):
            with pytest.raises(OSError) as e:
                m.set_one_reg("OSLSR_EL1", bad)
            assert e.value.errno == errno.EINVAL
        assert m.get_one_reg("OSLSR_EL1") == LOCKED


# -- variant-only stories: patch 1 ----------------------------------------------------------


def test_p1_reports_oslsr_through_the_aarch32_dbgoslsr_view_too():
    m = Machine("p1", aarch32=[0])
    m.set_one_reg("OSLSR_EL1", 0xA)
    assert m.guest_read("OSLSR_EL1") == 0xA
    assert "kvm_handle_cp14_32" in m.trace.functions()


# -- variant-only stories: patch 2 as posted ----------------------------------------------------


@pytest.mark.parametrize("vhe_mode", MODES, ids=MODE_IDS)
def test_p2_oslar_writes_never_reach_the_stored_oslsr_because_of_swapped_arguments(vhe_mode):
    # Source: [PATCH 2/3] calls vcpu_write_sys_reg(vcpu, OSLSR_EL1, oslsr | ...) against the
    # prototype (vcpu, u64 val, int reg). BRIEF.md says the write copies bit 0 into OSLSR.OSLK;
    # the code as posted does not.
    m = Machine("p2", vhe=vhe_mode)
    m.guest_write("OSLAR_EL1", 0)
    assert m.vcpu_reg("OSLSR_EL1") == 0xA  # the stored copy keeps its reset lock
    detail = " ".join(e.detail for e in m.trace if e.function == "trap_oslar_el1")
    assert "swapped" in detail


def test_p2_unlock_lands_in_the_ttbr1_slot_on_nvhe_and_in_the_cpu_on_vhe():
    nvhe = Machine("p2", vhe=False)
    nvhe.guest_write("OSLAR_EL1", 0)  # index 0x8 -> TTBR1_EL1 gets the value 26
    nvhe.exit_guest()
    assert nvhe.kvm.vcpus[0].ctxt.sys_regs["TTBR1_EL1"] == nvhe.defn.sysreg_index("OSLSR_EL1") == 26
    vhe = Machine("p2", vhe=True)
    vhe.guest_write("OSLAR_EL1", 1)  # index 0xA -> ESR_EL1, an on-CPU register while loaded on VHE
    assert vhe.pe.regs["ESR_EL1"] == 26  # written to the PE's ESR_EL12 ...
    # ... not to memory, which still holds reset_unknown()'s marker (sys_regs.h, 5.15)
    assert vhe.kvm.vcpus[0].ctxt.sys_regs["ESR_EL1"] == 0x1DE7EC7EDBADC0DE
    vhe.vcpu_put()
    assert vhe.kvm.vcpus[0].ctxt.sys_regs["ESR_EL1"] == 26  # vcpu_put saves it into the context


def test_p2_on_vhe_a_write_while_loaded_is_lost_after_put_and_load():
    m = Machine("p2", vhe=True)
    m.guest_write("OSLAR_EL1", 0)  # the guest unlocks while loaded
    m.vcpu_put()
    m.vcpu_load()
    assert m.guest_read("OSLSR_EL1") & OSLK  # still locked: the unlock is gone
    assert m.physical("OSLSR_EL1") & OSLK


def test_p2_on_nvhe_a_userspace_unlock_reaches_the_pe_at_the_next_entry():
    m = Machine("p2", vhe=False)
    m.set_one_reg("OSLSR_EL1", 0x8)
    m.enter_guest()
    assert not m.physical("OSLSR_EL1") & OSLK
    assert m.guest_read("OSLSR_EL1") == 0x8


def test_p2_on_vhe_the_hardware_value_is_saved_over_the_context_at_put():
    m = Machine("p2", vhe=True)
    m.enter_guest()
    m.set_one_reg("OSLSR_EL1", 0x8)  # KVM_RUN returned, so the vCPU was put first
    assert m.vcpu_reg("OSLSR_EL1") == 0x8
    m.vcpu_load()
    assert not m.physical("OSLSR_EL1") & OSLK


# -- variant-only stories: patch 3 -------------------------------------------------------------


def test_p1_and_p3_together_are_a_valid_combination():
    m = Machine({"p1", "p3"})
    assert m.variant == "p1+p3"
    assert DFR0.get(m.guest_read("ID_AA64DFR0_EL1"), "DebugVer") == 8
    m.guest_write("OSLAR_EL1", 1)
    assert m.guest_read("OSLSR_EL1") == 0x8


# -- variant-only stories: upstream ------------------------------------------------------------


def test_upstream_runs_a_locked_guest_with_mde_and_ss_cleared_and_keeps_its_own_mdscr(vhe):
    kde_mde_ss = (1 << 13) | (1 << 15) | 1
    m = Machine("upstream", vhe=vhe)
    m.guest_write("MDSCR_EL1", kde_mde_ss)
    m.guest_write("OSLAR_EL1", 1)
    m.exit_guest()
    m.enter_guest()
    running = m.physical("MDSCR_EL1")
    assert running & (1 << 13)  # KDE untouched
    assert not running & ((1 << 15) | 1)  # MDE and SS cleared while locked
    assert m.physical("MDCR_EL2") & (1 << 9)  # debug register accesses trap (TDA)
    assert m.guest_read("MDSCR_EL1") == kde_mde_ss  # the guest's own copy is preserved
    m.guest_write("OSLAR_EL1", 0)
    m.exit_guest()
    m.enter_guest()
    assert m.physical("MDSCR_EL1") == kde_mde_ss


def test_upstream_userspace_hw_breakpoints_keep_mde_on_despite_the_guests_lock():
    m = Machine("upstream")
    m.guest_write("OSLAR_EL1", 1)
    m.set_guest_debug(hw_breakpoints=[0x80000])
    m.enter_guest()
    assert m.physical("MDSCR_EL1") & (1 << 15)
    assert m.physical("MDCR_EL2") & (1 << 8)  # TDE: debug exceptions go to EL2
    assert m.physical("DBGBVR0_EL1") == 0x80000


# -- multiple vCPUs and AArch32 ----------------------------------------------------------------


def test_loading_another_vcpu_puts_the_first_on_the_one_pe():
    m = Machine("p2", vhe=True, vcpus=2)
    m.set_one_reg("OSLSR_EL1", 0x8, vcpu=1)
    m.enter_guest(0)
    assert m.physical("OSLSR_EL1") & OSLK  # vCPU 0 resets locked
    m.enter_guest(1)
    assert not m.loaded(0) and m.loaded(1)
    assert not m.physical("OSLSR_EL1") & OSLK  # vCPU 1's lock is now on the PE
    assert "kvm_arch_vcpu_put" in m.trace.functions()


def test_aarch32_guest_locks_through_dbgoslar_under_upstream():
    m = Machine("upstream", aarch32=[0])
    m.guest_write("OSLAR_EL1", 1)
    assert m.guest_read("OSLSR_EL1") == 0xA
    esrs = [int(e.detail.split("ESR_EL2=")[1], 16) for e in m.trace if e.function == "__guest_exit"]
    assert esrs and all(value >> 26 == 0x05 for value in esrs)  # trapped MCR/MRC p14


# -- stepping ----------------------------------------------------------------------------------


def test_step_advances_one_kernel_function_at_a_time_and_names_it(variant, vhe):
    m = Machine(variant, vhe=vhe)
    seen = []
    while True:
        ev = m.step()
        seen.append(ev.function)
        if m.where() == "guest" and not m.in_progress:
            break
        assert len(seen) < 50
    assert seen[0] == "kvm_arch_vcpu_load"
    assert "__guest_enter" in seen
    assert all(ev.function and ev.phase for ev in m.trace)
    if vhe:
        assert "sysreg_restore_guest_state_vhe" in seen
    else:
        assert "__sysreg_restore_state_nvhe" in seen


def test_the_same_calls_give_the_same_trace(variant, vhe):
    def run():
        m = Machine(variant, vhe=vhe)
        m.guest_write("OSLAR_EL1", 1)
        m.guest_read("OSLSR_EL1")
        m.vcpu_put()
        m.guest_write("OSLAR_EL1", 0)
        return m.trace.to_dataframe()

    assert run().equals(run())


def test_migrating_a_vcpu_of_any_5_15_kernel_without_patch_3_into_p3_reports_the_refused_id_register():
    for source in ("p1", "p2"):  # from baseline: test_restoring_a_vcpu_a_baseline_kernel_saved_...
        saved = Machine(source).save_vcpu()
        refused = Machine("p3").restore_vcpu(saved)
        assert [(name, err) for name, _, err, _ in refused] == [("ID_AA64DFR0_EL1", errno.EINVAL)]


def test_migrating_between_kernels_with_the_same_id_register_succeeds():
    assert Machine("upstream").restore_vcpu(Machine("p1").save_vcpu()) == []


def test_every_traced_step_names_a_known_kernel_function_and_its_file(variant, vhe):
    from kvmdbg import scenarios

    m = Machine(variant, vhe=vhe)
    for name in scenarios.names():
        if name != "migration":
            scenarios.get(name)(m)
    m.set_guest_debug(hw_breakpoints=[0x80000])
    m.set_one_reg("MDSCR_EL1", 0)
    m.reset_vcpu()
    unknown = {(e.function, e.file) for e in m.trace if e.file == "(unknown)" or not e.function}
    assert unknown == set()
    architectural = {e.function for e in m.trace if e.file.startswith("(the architecture")}
    assert architectural <= {"cold reset", "guest access", "guest exception"}
