"""Replay the recorded real-kernel runs through kvmdbg's public API.

``realkvm/recording.json`` holds, per (variant, host mode), the rows the VMM
(``realkvm/vmm.c``) printed: scenario, step, observed value.  A step is
``NN.op.argument``; this module performs the same op on a fresh
``kvmdbg.Machine`` per scenario and returns the model's value in the VMM's
notation, so the two can be compared cell by cell.

How each op maps onto the model:

==================  ======================================================
guest_read.R        ``Machine.guest_read(R)``; a ``GuestFault`` is
                    ``undef:<esr>``
guest_write.R=V     ``Machine.guest_write(R, V)``: ``done`` or ``undef:<esr>``
exit.run            KVM_RUN returned to userspace: ``exit_guest()`` then
                    ``vcpu_put()`` (5.15-5.19 put the vCPU at the end of the
                    KVM_RUN ioctl); the value is the exit reason, MMIO
get_one_reg.R       ``Machine.get_one_reg(R)``: hex, or the errno name
set_one_reg.R=V     ``Machine.set_one_reg(R, V)``: ``ok`` or the errno name
reg_list.R          ``reg_id(R) in Machine.get_reg_list()``
vcpu_init.again     ``Machine.reset_vcpu()``
vm_close.all        no model action: closing the VM writes no register
host_oslsr.WHEN     ``Machine.physical("OSLSR_EL1")`` (the probe reads the
                    PE while the VMM runs, so the vCPU is put)
==================  ======================================================

A model error that is not a kernel errno (for example "not modelled") is
shown as ``model:<ExceptionName>``, which never equals a recorded value.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kvmdbg
from kvmdbg.cpu.profiles import CpuProfile

RECORDING = Path(__file__).with_name("recording.json")

# The physical CPU of the recording: QEMU 7.2's -cpu max.  Its ID_AA64DFR0_EL1
# is the Cortex-A57 value with DebugVer 9 and PMUVer 6 (QEMU target/arm/cpu64.c,
# aarch64_max_initfn).  The VMM creates its vCPUs without KVM_ARM_VCPU_PMU_V3,
# so KVM reports PMUVer 0 to them: the replay builds its Machine with pmu=False.
QEMU_MAX = CpuProfile(
    "qemu-7.2-max",
    "QEMU 7.2 -cpu max (TCG), the PE of the real-kernel recording; vCPUs without a PMU.",
    "QEMU 7.2 target/arm/cpu64.c aarch64_max_initfn: Cortex-A57 ID_AA64DFR0_EL1 "
    "with DebugVer 9, PMUVer 6",
    0x10305609,
    has_pmu=False,
)


@dataclass(frozen=True)
class Cell:
    variant: str
    mode: str
    scenario: str
    step: str
    observed: str
    model: str

    @property
    def agrees(self) -> bool:
        return self.observed == self.model


def load(path: Path = RECORDING) -> dict:
    return json.loads(Path(path).read_text())


def scenarios(run: dict) -> dict[str, list[dict]]:
    """The run's rows grouped by scenario, in recorded order."""
    out: dict[str, list[dict]] = {}
    for row in run["rows"]:
        out.setdefault(row["scenario"], []).append(row)
    return out


def _errno_name(err: OSError) -> str:
    return errno.errorcode.get(err.errno, f"E{err.errno}") if err.errno else f"model:{type(err).__name__}"


def _split(step: str) -> tuple[str, str, int | None]:
    """'03.set_one_reg.OSLSR_EL1=0xa' -> ('set_one_reg', 'OSLSR_EL1', 0xa)."""
    _, op, arg = step.split(".", 2)
    value = None
    if "=" in arg:
        arg, v = arg.split("=", 1)
        value = int(v, 16)
    return op, arg, value


def model_value(m: kvmdbg.Machine, step: str) -> str:
    """Perform one recorded step on the model; the model's value, in the VMM's notation."""
    op, arg, value = _split(step)
    try:
        if op == "guest_read":
            try:
                return f"{m.guest_read(arg):#x}"
            except kvmdbg.GuestFault as f:
                return f"undef:{f.esr:#x}"
        if op == "guest_write":
            try:
                m.guest_write(arg, value)
                return "done"
            except kvmdbg.GuestFault as f:
                return f"undef:{f.esr:#x}"
        if op == "exit":
            if m.where() == "guest":
                m.exit_guest()
            if m.loaded():
                m.vcpu_put()
            return "MMIO"
        if op == "get_one_reg":
            return f"{m.get_one_reg(arg):#x}"
        if op == "set_one_reg":
            m.set_one_reg(arg, value)
            return "ok"
        if op == "reg_list":
            return "listed" if kvmdbg.reg_id(arg) in m.get_reg_list() else "unlisted"
        if op == "vcpu_init":
            m.reset_vcpu()
            return "ok"
        if op == "vm_close":
            return "ok"
        if op == "host_oslsr":
            return f"{m.physical('OSLSR_EL1'):#x}"
    except OSError as e:
        return _errno_name(e)
    except Exception as e:  # a model error that is not a kernel errno
        return f"model:{type(e).__name__}"
    raise ValueError(f"recording step {step!r}: unknown op {op!r}")


def replay_scenario(variant: str, mode: str, scenario: str, rows: list[dict]) -> list[Cell]:
    m = kvmdbg.Machine(variant, vhe=(mode == "vhe"), cpu=QEMU_MAX, trace=False, pmu=False)
    return [Cell(variant, mode, scenario, r["step"], r["value"], model_value(m, r["step"]))
            for r in rows]


def all_cells(recording: dict | None = None) -> Iterator[Cell]:
    rec = load() if recording is None else recording
    for run in rec["runs"]:
        for scenario, rows in scenarios(run).items():
            yield from replay_scenario(run["variant"], run["mode"], scenario, rows)
