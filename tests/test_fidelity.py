"""Fidelity fixes from the real-kernel comparison (issue 11), each tied to its source.

Every test names the kernel function and version (or the recorded real run, BRIEF
section 8) the fact comes from.
"""

from __future__ import annotations

import errno

import pytest
from facts import MODE_IDS, SetOslsr, facts

from kvmdbg import PATCHES, VARIANTS, Machine, NotModelledError, reg_id
from kvmdbg.kvm.sys_regs import CORE_REG_IDS, RESET_UNKNOWN, VCPU_SYSREG_515
from kvmdbg.patches import VARIANT_DESCRIPTIONS, resolve
from kvmdbg.teach import scenarios
from kvmdbg.teach.compare import selftest_run_table, selftest_stage_table
from kvmdbg.teach.scenarios import SELFTEST_STAGES

MODES = (False, True)
REGS_RESET_UNKNOWN = ("TTBR1_EL1", "ESR_EL1", "FAR_EL1")


# -- reset_unknown() (arch/arm64/kvm/sys_regs.h, 5.15) -------------------------------------


@pytest.mark.parametrize("vhe", MODES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reg", REGS_RESET_UNKNOWN)
def test_reset_unknown_registers_hold_kvms_marker_for_guest_and_userspace(variant, vhe, reg):
    m = Machine(variant, vhe=vhe)
    assert RESET_UNKNOWN == 0x1DE7EC7EDBADC0DE
    assert m.vcpu_reg(reg) == RESET_UNKNOWN
    assert m.get_one_reg(reg) == RESET_UNKNOWN  # real runs: KVM_GET_ONE_REG served it
    assert m.guest_read(reg) == RESET_UNKNOWN  # real runs: the guest read it


@pytest.mark.parametrize("variant", VARIANTS)
def test_vbar_el1_resets_to_zero_with_reset_val(variant):
    # sys_reg_descs[], 5.15: { SYS_DESC(SYS_VBAR_EL1), NULL, reset_val, VBAR_EL1, 0 }
    assert Machine(variant).get_one_reg("VBAR_EL1") == 0


# -- the userspace ABI reaches every register the model keeps -------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_non_debug_registers_are_listed_and_served(variant):
    # walk_one_sys_reg(): a descriptor with .reg is listed; kvm_arm_sys_reg_get/set_reg() serve it.
    m = Machine(variant)
    listed = m.get_reg_list()
    for reg in ("TTBR1_EL1", "ESR_EL1", "FAR_EL1", "VBAR_EL1"):
        assert reg_id(reg) in listed
        m.set_one_reg(reg, 0x1234)
        assert m.get_one_reg(reg) == 0x1234


def test_elr_and_spsr_are_core_registers_for_userspace():
    # 5.15 has no sys_reg_descs[] entry for them (ENOENT by system-register id); guest.c
    # core_reg_addr() serves them as KVM_REG_ARM_CORE elr_el1 / spsr[KVM_SPSR_EL1].
    m = Machine("p1")
    assert CORE_REG_IDS["ELR_EL1"] == 0x6030000000100046
    m.set_one_reg(CORE_REG_IDS["SPSR_EL1"], 0x3C5)
    assert m.get_one_reg("SPSR_EL1") == 0x3C5 == m.vcpu_reg("SPSR_EL1")
    with pytest.raises(OSError) as e:
        m.get_one_reg(reg_id("ELR_EL1"))
    assert e.value.errno == errno.ENOENT


def test_a_register_the_model_lacks_says_not_modelled_not_a_kernel_errno():
    m = Machine("p1")
    sctlr = 0x6030000000130000 | 3 << 14 | 1 << 7  # SCTLR_EL1: the kernel serves it
    before, n = m.snapshot(), len(m.trace)
    with pytest.raises(NotModelledError, match="not one the model has") as e:
        m.get_one_reg(sctlr)
    assert isinstance(e.value, LookupError) and not isinstance(e.value, OSError)
    with pytest.raises(NotModelledError):
        m.set_one_reg(sctlr, 0)
    assert m.snapshot() == before and len(m.trace) == n


# -- enum vcpu_sysreg (arch/arm64/include/asm/kvm_host.h, 5.15; patch 1) ----------------------


def test_the_515_enum_is_complete_and_patch_1_puts_oslsr_after_disr():
    assert len(VCPU_SYSREG_515) == 122  # NR_SYS_REGS in 5.15
    assert VCPU_SYSREG_515[25] == "DISR_EL1" and VCPU_SYSREG_515[26] == "PMCR_EL0"
    assert VCPU_SYSREG_515[-1] == "DBGVCR32_EL2" and "PMSWINC_EL0" not in VCPU_SYSREG_515
    p1 = resolve("p1").vcpu_sysreg
    assert p1.index("OSLSR_EL1") == 26 and p1[27] == "PMCR_EL0" and len(p1) == 123


def _planted_unlock(variant, oslsr, vhe=True, oslar=0):
    # Only on VHE does a planted OSLSR reach trap_oslar_el1: there the handler reads the stored
    # copy (OSLSR_EL1 is not on the VHE on-CPU list), and the PE's value is saved only at put.
    m = Machine(variant, vhe=vhe)
    m.set_one_reg("OSLSR_EL1", oslsr)  # p1/p2 do not validate (no set_user)
    m.guest_write("OSLAR_EL1", oslar)
    return m, [e.detail for e in m.trace if e.function == "trap_oslar_el1"][-1]


def test_p2_swapped_write_at_index_27_names_pmcr_el0():
    m, note = _planted_unlock("p2", 0x19, oslar=1)  # (0x19 & ~2) | 2 = 0x1B = 27
    assert "sys_regs[27] (PMCR_EL0)" in note
    assert m.kvm.vcpus[0].ctxt.sys_regs["PMCR_EL0"] == 26


def test_p2_swapped_write_at_oslsrs_own_index_changes_oslsr():
    m, note = _planted_unlock("p2", 0x18, oslar=1)  # (0x18 & ~2) | 2 = 0x1A = 26 = OSLSR_EL1
    assert "OSLSR_EL1 itself" in note and "becomes 0x1a" in note
    assert "not into OSLSR_EL1" not in note
    assert m.vcpu_reg("OSLSR_EL1") == 0x1A


def test_p2_swapped_write_past_the_array_says_out_of_bounds():
    m, note = _planted_unlock("p2", 0x1000)
    assert "past the end of the array" in note and "out of bounds" in note
    assert "register the host itself runs with" in note  # VHE: KVM is the host kernel at EL2


def test_p2_on_nvhe_a_planted_oslsr_is_replaced_before_the_handler_reads_it():
    # The trapped write exits the guest first: __sysreg_save_state_nvhe() saves the PE's OSLSR.
    m, note = _planted_unlock("p2", 0x19, vhe=False, oslar=1)
    assert "sys_regs[10] (ESR_EL1)" in note


def test_vhe_on_cpu_notes_use_the_el12_alias():
    m = Machine("p2", vhe=True)
    m.guest_write("OSLAR_EL1", 0)  # lands in TTBR1_EL1, on the CPU while loaded on VHE
    details = " ".join(e.detail for e in m.trace)
    assert "TTBR1_EL12 on the CPU" in details and "_EL1_EL12" not in details


# -- MDCR_EL2 on VHE: activate_traps_vhe_load / deactivate_traps_vhe_put (hyp/vhe/switch.c) ----


@pytest.mark.parametrize("variant", VARIANTS)
def test_vhe_switches_mdcr_el2_at_load_and_put_only(variant):
    m = Machine(variant, vhe=True)
    host = m.physical("MDCR_EL2")
    m.vcpu_load()
    guest = m.physical("MDCR_EL2")
    assert guest != host and guest == m.kvm.vcpus[0].mdcr_el2
    m.enter_guest()
    m.exit_guest()
    assert m.physical("MDCR_EL2") == guest  # __deactivate_traps (VHE) leaves it
    fns = [e.function for e in m.trace]
    assert "activate_traps_vhe_load" in fns
    m.vcpu_put()
    assert m.physical("MDCR_EL2") == host
    assert m.trace[-3].function == "deactivate_traps_vhe_put"


@pytest.mark.parametrize("variant", VARIANTS)
def test_nvhe_switches_mdcr_el2_at_every_entry_and_exit(variant):
    m = Machine(variant, vhe=False)
    host = m.physical("MDCR_EL2")
    m.enter_guest()
    assert m.physical("MDCR_EL2") == m.kvm.vcpus[0].mdcr_el2
    m.exit_guest()
    assert m.physical("MDCR_EL2") == host


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_vhe_step_is_filed_under_an_nvhe_source_file(variant):
    m = Machine(variant, vhe=True)
    for name in scenarios.names():
        if name != "selftest-oslock":
            scenarios.get(name)(m)
    files = {(e.function, e.file) for e in m.trace}
    assert not [f for f in files if "/nvhe/" in f[1]], files
    assert ("__activate_traps", "arch/arm64/kvm/hyp/vhe/switch.c") in files
    nvhe = Machine(variant)
    nvhe.guest_read("OSLSR_EL1")
    assert ("__activate_traps", "arch/arm64/kvm/hyp/nvhe/switch.c") in {(e.function, e.file) for e in nvhe.trace}


# -- the p2 summary says what each host mode does ---------------------------------------------


def test_p2_summary_distinguishes_nvhe_and_vhe():
    text = PATCHES["p2"].summary
    assert "also governs the host while it is loaded" not in text
    assert "on nVHE" in text and "every exit puts the host's value back" in text
    assert "on VHE" in text and "after vcpu_put" in text


# -- the selftest as the real run reports it ---------------------------------------------------


@pytest.mark.parametrize("vhe", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_real_selftest_stops_at_its_first_failing_assertion(variant, vhe):
    # The real run stops at the first GUEST_ASSERT that fails; in every variant so far that is the
    # first stage that also fails on its own (tests/facts.py, selftest). README: "selftest-run".
    column = selftest_run_table([variant]).loc[:, (MODE_IDS[vhe], variant)]
    stages = [s for s, _ in SELFTEST_STAGES]
    letters = facts(variant, vhe).selftest
    first = letters.find("F")
    if first < 0:
        assert column["result"] == "PASS"
        assert list(column[stages]) == ["pass"] * len(stages)
    else:
        assert column["result"] == f"FAIL at {stages[first]}"
        assert list(column[stages]) == ["pass"] * first + ["fail"] + ["not run"] * (len(stages) - first - 1)


def test_a_stage_the_real_run_never_reaches_can_pass_on_its_own():
    stages = selftest_stage_table()
    assert stages.loc["8 OS Lock blocks hw breakpoint", ("nVHE", "p2")] == "pass"  # on its own


# -- userspace-planted OSLSR (real runs, BRIEF section 8) ------------------------------------------


@pytest.mark.parametrize("vhe", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_userspace_planted_oslsr(variant, vhe):
    # Recorded for baseline, p1, p2/p3 on VHE and upstream (BRIEF section 8). p2/p3 on nVHE follows
    # from hyp/nvhe/switch.c: the trapped MRS exits the guest, and patch 2's __sysreg_save_el1_state()
    # stores the PE's OSLSR (0x8) before trap_oslsr_el1 reads the context. On VHE vcpu_put saves the
    # PE's value over the planted one, so GET_ONE_REG reads 0x8 after the run.
    f = facts(variant, vhe)
    guest, after = f.planted
    obs = scenarios.get("userspace-oslsr")(Machine(variant, vhe=vhe))
    assert obs["SET_ONE_REG OSLSR_EL1=0x0"] == f.oslsr_set.value
    assert obs["guest reads OSLSR_EL1"] == guest
    assert obs["GET_ONE_REG OSLSR_EL1 after the run"] == ("ENOENT" if after is None else after)


def test_setting_oslsr_names_the_same_errno_as_the_scenario():
    assert SetOslsr.NOT_A_REGISTER.value == errno.errorcode[errno.ENOENT]
    assert SetOslsr.OSLK_ONLY.value == errno.errorcode[errno.EINVAL]


# -- upstream resets unlocked, on purpose ------------------------------------------------------


@pytest.mark.parametrize("vhe", MODES)
def test_upstream_resets_unlocked_and_says_it_deviates_from_the_architecture(vhe):
    m = Machine("upstream", vhe=vhe)
    assert m.get_one_reg("OSLSR_EL1") == 0x8 and m.guest_read("OSLSR_EL1") == 0x8
    from kvmdbg import UPSTREAM

    assert "deliberate deviation from the architecture" in UPSTREAM.summary
    assert "locked" in m.defn.notes["kvm_reset_sys_regs"]


# -- the intended reading of patch 2 --------------------------------------------------------------


def test_p2_intended_is_a_variant_after_the_five():
    assert VARIANTS[:5] == ("baseline", "p1", "p2", "p3", "upstream")
    assert "p2-intended" in VARIANTS[5:]
    assert resolve("p2-intended").patches == ("p1", "p2-intended")
    assert "p2-intended" in VARIANT_DESCRIPTIONS
    from kvmdbg import PatchError

    with pytest.raises(PatchError, match="two readings of the same e-mail"):
        resolve({"p1", "p2", "p2-intended"})


def test_p2_intended_on_nvhe_the_guests_lock_follows_its_writes_and_the_host_gets_its_value_back():
    m = Machine("p2-intended")
    m.guest_write("OSLAR_EL1", 0)
    assert m.guest_read("OSLSR_EL1") == 0x8 and m.physical("OSLSR_EL1") == 0x8
    m.guest_write("OSLAR_EL1", 1)
    assert m.guest_read("OSLSR_EL1") == 0xA and m.physical("OSLSR_EL1") == 0xA
    m.exit_guest()
    assert m.physical("OSLSR_EL1") == 0x8  # the host's own value, restored at exit


def test_p2_intended_on_vhe_the_host_keeps_the_guests_lock_after_put():
    m = Machine("p2-intended", vhe=True)
    m.guest_write("OSLAR_EL1", 1)
    m.vcpu_put()
    assert m.physical("OSLSR_EL1") == 0xA  # the host's EL1 state is never switched on VHE


def test_p2_intended_on_vhe_a_write_while_loaded_is_lost_at_put():
    # 5.15 vcpu_write_sys_reg(): OSLSR_EL1 is not in __vcpu_write_sys_reg_to_cpu()'s list, so the
    # write goes to memory; kvm_vcpu_put_sysregs_vhe() then saves the PE's stale OSLSR over it.
    m = Machine("p2-intended", vhe=True)
    m.guest_write("OSLAR_EL1", 0)
    assert m.vcpu_reg("OSLSR_EL1") == 0x8 and m.physical("OSLSR_EL1") == 0xA
    m.vcpu_put()
    assert m.vcpu_reg("OSLSR_EL1") == 0xA
    assert m.guest_read("OSLSR_EL1") == 0xA


def test_compare_shows_the_intended_reading_next_to_the_posted_code():
    import kvmdbg

    df = kvmdbg.compare("vhe-lost-update", ["p2", "p2-intended", "upstream"], vhe=True)
    assert list(df.columns) == ["p2", "p2-intended", "upstream"]
    assert list(df.loc[("scenario", "unlock lost")]) == [True, True, False]
    nvhe = kvmdbg.compare("vhe-lost-update", ["p2", "p2-intended"], vhe=False)
    assert list(nvhe.loc[("scenario", "unlock lost")]) == [True, False]


def test_vhe_writes_an_mdcr_el2_changed_since_vcpu_load_at_the_next_entry():
    # kvm_arm_setup_debug() (debug.c, 5.15): on VHE, mdcr_el2 changes since vcpu_load go to the PE.
    m = Machine("baseline", vhe=True)
    m.set_guest_debug(single_step=True)
    m.vcpu_load()
    assert not m.physical("MDCR_EL2") & (1 << 8)  # loaded with the value from before
    m.enter_guest()
    assert m.physical("MDCR_EL2") & (1 << 8)  # TDE: userspace is debugging the guest
    setup = [e for e in m.trace if e.function == "kvm_arm_setup_debug"][-1]
    assert "written to the PE now" in setup.detail

