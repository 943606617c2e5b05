"""The guest executor and the machine's parts depend only downward: none imports kvmdbg.machine (not even for types)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kvmdbg.run
from kvmdbg import Machine
from kvmdbg.machine import VMM_DBGBCR, VMM_DBGWCR

RUN = Path(kvmdbg.run.__file__)


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("module", ["run", "core", "recorder", "stepper", "guest", "userspace", "versioned"])
def test_the_executor_and_the_machines_parts_import_nothing_from_the_machine_module(module: str) -> None:
    path = RUN.parent / f"{module}.py"
    assert not {m for m in _imported_modules(path) if m == "kvmdbg.machine" or m.startswith("kvmdbg.machine.")}


def test_the_machine_is_a_guest_host() -> None:
    """Machine provides everything the executor's GuestHost protocol asks for."""
    m = Machine("upstream", trace=False)
    for name in ("kvm", "pe", "vcpu_index", "drive", "record", "guest_write", "guest_read"):
        assert hasattr(m, name), name


def test_the_vmm_breakpoint_and_watchpoint_controls_are_the_documented_fields() -> None:
    from kvmdbg.arch.registers import REGISTERS

    bcr = REGISTERS["DBGBCR0_EL1"].decode(VMM_DBGBCR)
    wcr = REGISTERS["DBGWCR0_EL1"].decode(VMM_DBGWCR)
    assert (bcr["E"], bcr["PMC"], bcr["BAS"], bcr["BT"]) == (1, 0b11, 0b1111, 0)
    assert (wcr["E"], wcr["PAC"], int(wcr["LSC"]), wcr["BAS"]) == (1, 0b11, 0b11, 0xFF)
    assert (VMM_DBGBCR, VMM_DBGWCR) == (0x1E7, 0x1FFF)  # the values KVM_SET_GUEST_DEBUG carried before
