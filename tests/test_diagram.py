"""The machine and ISS diagrams: the picture says what the Machine says, in hex, as valid SVG."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kvmdbg import VARIANTS, Machine
from kvmdbg.errors import KvmdbgError
from kvmdbg.teach.diagram import BOX_REGISTERS, Diagram, decode_fields, iss_diagram, machine_diagram

SVG = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parent.parent


def rows(d: Diagram) -> dict[str, tuple[str, bool]]:
    """Each register row the SVG draws: "loc:REG:vcpu" -> (value text, marked changed)."""
    root = ET.fromstring(d.svg)
    return {g.get("data-key"): (g.get("data-value"), g.get("data-changed") == "1")
            for g in root.iter(f"{SVG}g") if g.get("data-key")}


def texts(d: Diagram) -> str:
    return "\n".join("".join(t.itertext()) for t in ET.fromstring(d.svg).iter(f"{SVG}text"))


def machine_value(m: Machine, loc: str, reg: str, vcpu: int) -> int | None:
    if loc == "physical":
        return m.physical(reg)
    if loc == "host":
        return m.host_reg(reg)
    if loc == "vcpu":
        return m.vcpu_reg(reg, vcpu)
    return m.guest_view(reg, vcpu)


def assert_matches_machine(d: Diagram, m: Machine) -> None:
    shown = rows(d)
    for loc, regs in BOX_REGISTERS.items():
        for reg in regs:
            vcpu = -1 if loc in ("host", "physical") else 0
            v = machine_value(m, loc, reg, max(vcpu, 0))
            assert shown[f"{loc}:{reg}:{vcpu}"][0] == ("—" if v is None else hex(v)), (loc, reg)
    for reg in ("TTBR1_EL1", "ESR_EL1"):
        assert shown[f"vcpu:{reg}:0"][0] == hex(m.vcpu_reg(reg))


@pytest.mark.parametrize("vhe", [False, True], ids=["nVHE", "VHE"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_box_shows_the_machines_values_in_hex(variant: str, vhe: bool) -> None:
    m = Machine(variant, vhe=vhe)
    assert_matches_machine(machine_diagram(m), m)
    m.guest_write("OSLAR_EL1", 1)
    assert_matches_machine(machine_diagram(m, m.trace[-1]), m)
    m.exit_guest()
    m.vcpu_put()
    assert_matches_machine(machine_diagram(m), m)


def test_a_diagram_is_an_svg_picture_that_a_notebook_shows() -> None:
    d = machine_diagram(Machine("p2"))
    root = ET.fromstring(d.svg)
    assert root.tag == f"{SVG}svg" and "kvmdbg-diagram" in root.get("class", "")
    assert int(root.get("width")) >= 900 and int(root.get("height")) >= 300
    assert d._repr_svg_() == d.svg
    assert d._repr_html_().startswith('<div class="kvmdbg-diagram">') and d.svg in d._repr_html_()
    assert "http" not in d.svg.replace("http://www.w3.org/2000/svg", "")  # nothing from the network


def test_fields_are_decoded() -> None:
    assert decode_fields("OSLSR_EL1", 0xA) == "OSLK=1 OSLM=0b10"
    assert decode_fields("OSLSR_EL1", 0x8) == "OSLK=0 OSLM=0b10"
    assert decode_fields("OSDLR_EL1", 0x1) == "DLK=1"
    assert decode_fields("MDSCR_EL1", 0x8000 | 0x2000 | 1) == "MDE=1 SS=1 KDE=1"
    # 5.15's MDCR_EL2 for a guest: HPMN 6, TPM, TPMCR, TDA, TDOSA, TDRA, TPMS, TTRF
    assert decode_fields("MDCR_EL2", 0x84E66) == "HPMN=0x6 TPMCR TPM TDA TDOSA TDRA TPMS TTRF"
    assert decode_fields("MDCR_EL2", 0x6) == "HPMN=0x6"
    d = machine_diagram(Machine("p2"))
    assert "OSLK=1 OSLM=0b10" in texts(d)  # the vCPU resets locked under p2


def test_running_el_and_host_mode() -> None:
    m = Machine("p2")
    d = machine_diagram(m)
    assert d.running.startswith("the host kernel, at EL1") and "nVHE" in d.running
    m.enter_guest()
    d = machine_diagram(m, m.trace[-1])
    assert "guest kernel, at EL1" in d.running
    assert ET.fromstring(d.svg).find(f".//{SVG}rect[@data-running='1']").get("data-el") == "EL1:1"
    ev = m.step()  # __guest_exit: KVM's hyp code at EL2 on nVHE
    assert ev.function == "__guest_exit"
    d = machine_diagram(m, ev)
    assert "hyp code, at EL2" in d.running
    assert ET.fromstring(d.svg).find(f".//{SVG}rect[@data-running='1']").get("data-el") == "EL2:0"
    v = Machine("p2", vhe=True)
    d = machine_diagram(v)
    assert "at EL2 (VHE: the host kernel runs at EL2)" in d.running
    assert "p2 · VHE" in d.title


def test_the_arrow_names_the_function_that_moved_the_value() -> None:
    m = Machine("p2")
    m.vcpu_load()
    ev = None
    while ev is None or ev.function != "__sysreg_restore_state_nvhe":
        ev = m.step()
    d = machine_diagram(m, ev)
    (arrow,) = [a for a in d.arrows if a.register == "OSLSR_EL1"]
    # patch 2 restores the vCPU context's OSLK onto the PE at entry: 0x8 -> 0xa
    assert (arrow.function, arrow.source, arrow.dest, arrow.before, arrow.after) == \
        ("__sysreg_restore_state_nvhe", "vcpu", "physical", 0x8, 0xA)
    root = ET.fromstring(d.svg)
    assert root.find(f".//{SVG}path[@data-function='__sysreg_restore_state_nvhe']") is not None
    assert "__sysreg_restore_state_nvhe [step" in texts(d) and "0x8 → 0xa" in texts(d)
    assert rows(d)["physical:OSLSR_EL1:-1"] == ("0xa", True)
    # the whole exit, as one action: its net effect is the host's state back on the PE
    m.run_to("guest")
    before = machine_diagram(m)
    evs = m.exit_guest()
    d = machine_diagram(m, evs, before=before)
    assert {(a.function, a.source, a.dest, a.register, a.before, a.after) for a in d.arrows} == {
        ("__sysreg_restore_state_nvhe", "host", "physical", "OSLSR_EL1", 0xA, 0x8),
        ("__deactivate_traps", "host", "physical", "MDCR_EL2", 0x84E66, 0x6)}


def test_p2_swapped_arguments_show_in_the_vcpu_context() -> None:
    m = Machine("p2")
    m.enter_guest()
    before = machine_diagram(m)
    start = m.trace[-1].step
    m.guest_write("OSLAR_EL1", 1)  # lock: stores 26 (0x1a) into sys_regs[ESR_EL1]
    d = machine_diagram(m, [e for e in m.trace if e.step > start], before=before)
    (arrow,) = [a for a in d.arrows if a.register == "ESR_EL1"]
    assert (arrow.function, arrow.dest, arrow.after) == ("trap_oslar_el1", "vcpu", 0x1A)
    assert rows(d)["vcpu:ESR_EL1:0"] == ("0x1a", True)
    assert rows(d)["vcpu:OSLSR_EL1:0"] == ("0xa", False)  # the stored OSLSR never changed
    start = m.trace[-1].step
    m.guest_write("OSLAR_EL1", 0)  # unlock: TTBR1_EL1, the guest kernel's page-table base
    d = machine_diagram(m, [e for e in m.trace if e.step > start], before=d)
    assert [(a.function, a.register, a.after) for a in d.arrows] == [("trap_oslar_el1", "TTBR1_EL1", 0x1A)]


def test_a_snapshot_can_be_drawn() -> None:
    m = Machine("upstream")
    m.guest_write("OSLAR_EL1", 1)
    d = machine_diagram(m.snapshot())
    assert rows(d)["vcpu:OSLSR_EL1:0"][0] == "0xa" and rows(d)["physical:OSLSR_EL1:-1"][0] == "0x8"
    assert "vcpu:TTBR1_EL1:0" not in rows(d)  # a Snapshot holds only the watched registers
    assert "guest kernel" in d.running


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KvmdbgError, match="Machine or a Snapshot"):
        machine_diagram("p2")  # type: ignore[arg-type]
    with pytest.raises(KvmdbgError, match="Event"):
        machine_diagram(Machine(), ["__guest_enter"])  # type: ignore[list-item]
    d = machine_diagram(Machine())
    with pytest.raises(KvmdbgError, match=r"\.svg or \.html"):
        d.save(tmp_path / "x.png")
    assert d.save(tmp_path / "m.svg").read_text().startswith("<?xml")
    assert 'class="kvmdbg-diagram"' in d.save(tmp_path / "m.html").read_text()
    for bad in ("0x62280420", True, -1, 1 << 32, 1.5):
        with pytest.raises(KvmdbgError):
            iss_diagram(bad)


def test_iss_diagram_of_a_trapped_oslar_write() -> None:
    d = iss_diagram(0x62280420)  # MSR OSLAR_EL1, x1 (QEMU's syndrome in BRIEF.md section 7)
    root = ET.fromstring(d.svg)
    fields = {r.get("data-field") for r in root.iter(f"{SVG}rect") if r.get("data-field")}
    assert fields == {"EC", "IL", "RES0", "Op0", "Op2", "Op1", "CRn", "Rt", "CRm", "Dir"}
    t = texts(d)
    assert "EC 0x18: trapped MSR/MRS" in t and "IL 1: 32-bit instruction" in t
    assert "Op0=0x2 Op1=0x0 CRn=0x1 CRm=0x0 Op2=0x4  ->  OSLAR_EL1" in t
    assert "Rt=0x1: general register x1" in t and "write: MSR OSLAR_EL1, x1" in t
    assert "31:26" in t and "21:20" in t and "19:17" in t and "16:14" in t and "13:10" in t and "9:5" in t
    t = texts(iss_diagram(0x62280443))  # MRS x2, OSLSR_EL1
    assert "OSLSR_EL1" in t and "read: MRS x2, OSLSR_EL1" in t


def test_iss_diagram_of_other_classes() -> None:
    t = texts(iss_diagram(0x02000000))  # an UNDEF as the guest sees it
    assert "EC 0x00: unknown reason" in t and "ISS 0x0" in t
    import numpy as np

    assert "BRK" in texts(iss_diagram(np.uint32(0xF2000000)))  # a NumPy integer from a DataFrame


def test_importing_the_diagram_loads_no_plotting_or_widgets() -> None:
    code = ("import sys, kvmdbg, kvmdbg.teach.diagram as d; d.machine_diagram(kvmdbg.Machine()); "
            "bad = [m for m in ('matplotlib', 'ipywidgets', 'pandas') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})


def test_two_vcpus_each_get_their_boxes_and_the_running_one_is_named() -> None:
    m = Machine("p2", vcpus=2)
    m.guest_write("OSLAR_EL1", 1, vcpu=1)  # vCPU 1's handler: 0x1a into its ESR_EL1 slot
    d = machine_diagram(m)
    shown = rows(d)
    assert shown["vcpu:ESR_EL1:1"][0] == "0x1a"
    assert shown["vcpu:ESR_EL1:0"][0] == hex(m.vcpu_reg("ESR_EL1", 0)) != "0x1a"  # vCPU 0 untouched
    assert shown["guest_view:OSLSR_EL1:1"][0] == hex(m.guest_view("OSLSR_EL1", 1))
    assert "vCPU 1 is in the guest" in d.running
    assert "vCPU 0 is in the host, not loaded; vCPU 1 is in the guest, loaded" in texts(d)
