"""The one-page register cheat sheet, built from the model's own register table.

Every row comes from :mod:`kvmdbg.arch.registers` and :mod:`kvmdbg.arch.esr`, so the
sheet cannot disagree with what the kit computes: ``markdown()`` returns it as Markdown
(notebooks display it, the workshop pack and the static site include it). The worked
ESR example is computed with :func:`kvmdbg.arch.esr.esr_sysreg`.
"""

from __future__ import annotations

from kvmdbg.arch.esr import EC, decode_sysreg, esr_sysreg
from kvmdbg.arch.registers import REGISTERS, Access, SysReg

__all__ = ["SHEET_REGISTERS", "ISS_FIELDS", "markdown", "register_table", "iss_table"]

SHEET_REGISTERS = ("OSLAR_EL1", "OSLSR_EL1", "OSDLR_EL1", "DBGPRCR_EL1", "MDSCR_EL1", "MDCR_EL2",
                   "ID_AA64DFR0_EL1")

# ESR_ELx ISS for EC 0x18 (trapped MSR/MRS), Arm ARM D17.2.37: (name, msb, lsb, meaning).
ISS_FIELDS = (
    ("Op0", 21, 20, "op0 of the register's encoding"),
    ("Op2", 19, 17, "op2"),
    ("Op1", 16, 14, "op1"),
    ("CRn", 13, 10, "CRn"),
    ("Rt", 9, 5, "the general register Xt of the MSR/MRS"),
    ("CRm", 4, 1, "CRm"),
    ("Direction", 0, 0, "1 = read (MRS), 0 = write (MSR)"),
)

_ACCESS = {Access.RW: "read/write", Access.RO: "read-only", Access.WO: "write-only"}


def _bits(msb: int, lsb: int) -> str:
    return str(msb) if msb == lsb else f"{msb}:{lsb}"


def _field_cell(r: SysReg) -> str:
    parts = []
    for f in sorted(r.fields, key=lambda f: -f.msb):
        bits = ",".join(str(b) for b in sorted(f.bits, reverse=True)) if not f.contiguous else _bits(f.msb, f.lsb)
        parts.append(f"{f.name} [{bits}]" + (f": {f.doc}" if f.doc else ""))
    return "; ".join(parts)  # plain text: no raw HTML, so every Markdown renderer shows it the same


def register_table(names: tuple[str, ...] = SHEET_REGISTERS) -> str:
    """Markdown table: register, encoding, userspace id, access, fields."""
    rows = ["| register | encoding (op0, op1, CRn, CRm, op2) | userspace id (KVM_GET/SET_ONE_REG) | access | fields |",
            "|---|---|---|---|---|"]
    for name in names:
        r = REGISTERS[name]
        enc = str(r.encoding) if r.encoding is not None else "—"
        kid = f"`{r.kvm_id:#x}`" if r.encoding is not None and r.el <= 1 else "— (EL2: not a vCPU register)"
        rows.append(f"| `{r.name}` | {enc} | {kid} | {_ACCESS.get(r.access, r.access.name)} | {_field_cell(r)} |")
    return "\n".join(rows)


def iss_table() -> str:
    """Markdown table of the EC 0x18 syndrome layout, with OSLAR_EL1's trap as a worked example."""
    enc = REGISTERS["OSLAR_EL1"].encoding
    assert enc is not None
    example = esr_sysreg(enc, 1, False)
    trap = decode_sysreg(example)
    values = {"Op0": trap.encoding.op0, "Op2": trap.encoding.op2, "Op1": trap.encoding.op1,
              "CRn": trap.encoding.crn, "Rt": trap.rt, "CRm": trap.encoding.crm, "Direction": int(trap.is_read)}
    rows = [f"ESR_EL2 = EC [31:26] | IL [25] | ISS [24:0]. A trapped MSR/MRS has EC {int(EC.SYS64):#x}; IL is 1 "
            "for a 32-bit instruction.", "",
            f"Worked example: `MSR OSLAR_EL1, x1` trapped by MDCR_EL2.TDOSA gives ESR_EL2 = `{example:#010x}`.",
            "", "| ISS field | bits | meaning | in the example |", "|---|---|---|---|"]
    for name, msb, lsb, meaning in ISS_FIELDS:
        rows.append(f"| {name} | {_bits(msb, lsb)} | {meaning} | {values[name]:#x} |")
    return "\n".join(rows)


def _ec_table() -> str:
    rows = ["| EC | what |", "|---|---|"]
    what = {
        EC.UNKNOWN: "unknown reason: how an UNDEFINED instruction looks to the guest",
        EC.CP14_MR: "trapped MCR/MRC p14 (AArch32 debug registers)",
        EC.SYS64: "trapped MSR/MRS (AArch64 system registers)",
        EC.BREAKPOINT_LOW: "hardware breakpoint from a lower EL (0x31: same EL)",
        EC.SOFTSTP_LOW: "software step from a lower EL (0x33: same EL)",
        EC.WATCHPT_LOW: "watchpoint from a lower EL (0x35: same EL)",
        EC.BRK64: "BRK instruction: never blocked by the OS Lock",
    }
    for ec, text in what.items():
        rows.append(f"| {int(ec):#04x} | {text} |")
    return "\n".join(rows)


def markdown() -> str:
    """The whole cheat sheet as Markdown."""
    oslsr = REGISTERS["OSLSR_EL1"]
    unlocked = oslsr.encode(OSLM=0b10, OSLK=0)
    locked = oslsr.encode(OSLM=0b10, OSLK=1)
    return "\n".join([
        "## Registers of the OS Lock story", "",
        register_table(), "",
        "The userspace id follows KVM's formula for any system register; whether KVM_GET_REG_LIST lists it "
        "and KVM_GET_ONE_REG serves it depends on the variant (notebook 07).", "",
        f"OSLSR_EL1 values to know: `{unlocked:#x}` = OS Lock implemented (OSLM = 0b10), unlocked; "
        f"`{locked:#x}` = locked. The PE comes out of a cold reset locked; Linux unlocks every CPU at boot.",
        "",
        "Debug exceptions (breakpoint, watchpoint, software step) are never generated while OSLSR_EL1.OSLK = 1, "
        "nor while the OS Double Lock holds (OSDLR_EL1.DLK = 1 and DBGPRCR_EL1.CORENPDRQ = 0). "
        "Breakpoints and watchpoints also need MDSCR_EL1.MDE, software step MDSCR_EL1.SS, "
        "and same-EL targets MDSCR_EL1.KDE with PSTATE.D = 0. BRK is always taken.",
        "",
        "## A trapped access: ESR_EL2", "",
        iss_table(), "",
        "## Exception classes that matter here", "",
        _ec_table(), "",
    ])
