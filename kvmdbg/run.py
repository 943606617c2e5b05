"""Run a guest program on a vCPU: a small A64 executor wired to the model's PE and KVM.

``run_program(machine, program, vcpu, max_steps)`` (reached as ``Machine.run``) executes
the words of a :class:`~kvmdbg.arch.a64.Program` at the guest's EL1 and returns a
:class:`RunResult`. It is deliberately small; what it models, and how:

State
    General registers and SP are the vCPU's (``vcpu.x``, ``vcpu.sp``); they are loaded at
    the start and written back at the end, also when the run stops early. The PC starts at
    ``program.base``. The NZCV flags are all zero and never change (the assembler subset has
    no flag-setting instruction), so ``b.<cond>`` is decided by ``ConditionHolds()`` on
    NZCV=0000. PSTATE.D lives on the PE while the guest runs (``pe.pstate_d``; KVM copies
    it from/to ``vcpu.pstate_d`` on entry/exit), PSTATE.SS in ``vcpu.pstate_ss``.
    Memory is a fresh byte map per run (:class:`GuestMemory`) holding the program's words;
    loads from anything never written read as zero. There is no MMU: addresses are
    physical (the guest's view of stage 1 and stage 2 is left out).

Entry and exit
    If the vCPU is not running, KVM enters it first (``Kvm.enter``, which is
    ``kvm_arch_vcpu_ioctl_run`` -> ``__kvm_vcpu_run``). The program ends when the PC leaves
    the program: running past the last word (``stop_reason="end"``), or a branch / ``ret``
    outside it (``stop_reason="left program"``). ``hvc #0xffff`` is this kit's
    "test done" hypercall (like the selftests' ``GUEST_DONE`` ucall): it exits to the host
    and ends the run (``stop_reason="hvc #0xffff"``). The vCPU is left running (in the
    guest) after a normal end, as after ``Machine.guest_write``.

Instructions (Arm ARM DDI 0487, C6 "A64 Base Instruction Descriptions")
    ALU, branches, ``ldr``/``str`` behave as the Arm ARM says for the subset the assembler
    supports. ``msr``/``mrs`` of a system register go through the machine's guest access
    path (``Machine.guest_write`` / ``guest_read``): the PE decides whether MDCR_EL2 /
    HCR_EL2 traps the access to EL2, and KVM's handler (``kvm_handle_sys_reg`` and the
    variant's ``trap_*`` function) emulates it. A trapped access is recorded in ``exits``
    (reason ``"sysreg"``); an access the architecture makes UNDEFINED at EL1 (``MRS OSLAR_EL1``,
    ``MSR OSLSR_EL1``, an EL2 register) never reaches EL2 and is no exit. An access that ends
    in an UNDEF (architectural, or injected by ``kvm_inject_undefined``) is recorded as
    exception ``"undef"`` (ESR EC 0x00) and the program continues at the next instruction,
    as a guest handler that skips the instruction would. ``udf``, ``eret`` and words outside
    the subset are UNDEFINED here too. ``msr daifset/daifclr`` with bit 3 (D) set / clear PSTATE.D.
    ``hvc #imm`` (other than 0xffff) exits to the host with EC 0x16 (``handle_hvc`` ->
    ``kvm_hvc_call_handler``); KVM answers an unknown function id with
    ``SMCCC_RET_NOT_SUPPORTED`` (-1) in x0, which the model writes, and re-enters.

Debug exceptions (Arm ARM D2 "AArch64 Self-hosted Debug"; the decision is
:meth:`PhysicalCPU.debug_verdict`, i.e. ``AArch64.GenerateDebugExceptionsFrom()``)
    * Hardware breakpoint, checked *before* an instruction executes: a breakpoint n with
      DBGBCRn_EL1.E=1, PMC[0]=1 (matches EL1) and DBGBVRn_EL1[48:2] == PC[48:2] (an address
      match; BT, BAS, HMC and SSC are not modelled). ESR EC 0x31 at EL1, 0x30 at EL2.
    * Watchpoint, checked for each ``ldr``/``str`` *before* the access: DBGWCRn_EL1.E=1,
      PAC[0]=1 (EL1), LSC matching the load (bit 3) or store (bit 4), and one of the bytes
      accessed selected by BAS in the doubleword at DBGWVRn_EL1. The access is not
      performed; FAR_EL1 is the accessed address. ESR EC 0x35 at EL1, 0x34 at EL2.
    * ``brk #imm``: always generated, even with the OS Lock set (EC 0x3C).
    * Software step, the Arm ARM's state machine (D2.12): stepping is *active* when
      MDSCR_EL1.SS=1 and debug exceptions are enabled. If it is active and PSTATE.SS=1,
      the instruction executes, PSTATE.SS becomes 0 and, if still enabled, a step
      exception is taken with ELR = the next instruction (EC 0x33 at EL1, 0x32 at EL2). If
      it is active and PSTATE.SS=0 ("active-pending", e.g. just after the guest set
      MDSCR_EL1.SS), the step exception is taken before the next instruction executes.
      An instruction KVM emulates counts as executed (``kvm_skip_instr`` clears
      PSTATE.SS, so the step completes on return). An instruction that takes another
      exception (BRK, UNDEF, breakpoint, watchpoint) is not stepped: the exception saves
      SPSR.SS=0, so the step exception is pending on return from the handler.
    The guest's exception handlers are those of the kernel selftest
    ``tools/testing/selftests/kvm/aarch64/debug-exceptions.c``, run atomically (handlers
    run with PSTATE.D=1, so nothing in them is stepped or breaks):
    BRK -> ``pc += 4`` (guest_sw_bp_handler); hardware breakpoint and watchpoint -> set
    SPSR.D and return to the same instruction (guest_hw_bp_handler, guest_wp_handler), so
    it re-executes with same-EL debug exceptions masked and completes; software step ->
    set SPSR.SS (guest_ss_handler) so stepping continues; UNDEF -> ``pc += 4``. Each
    exception taken at EL1 sets ESR_EL1/ELR_EL1 (FAR_EL1 for a watchpoint) on the PE
    (``Kvm.take_guest_exception``).
    A debug exception routed to EL2 (MDCR_EL2.TDE, set by KVM while the VMM debugs the
    guest through KVM_SET_GUEST_DEBUG) exits to KVM (``kvm_handle_guest_debug``), which
    returns to userspace with KVM_EXIT_DEBUG: the run ends with an ``exits`` entry of
    reason ``"debug"``, ``stop_reason="KVM_EXIT_DEBUG"``, and the vCPU put (KVM_RUN
    returned).

Speed: instructions are decoded once per program into closures, kept in a small cache keyed
by the program's base and words (:class:`_ProgramCache`), so a second run of the same
program decodes nothing; breakpoint, watchpoint and
step checks are made only while some DBGBCRn/DBGWCRn.E or MDSCR_EL1.SS bit is set on the
PE, a condition re-read after every system register access and every exit.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from kvmdbg.arch.a64 import decode
from kvmdbg.arch.debug import DebugKind
from kvmdbg.arch.esr import EC, esr, esr_sysreg
from kvmdbg.arch.registers import REGISTERS, Access, lookup_encoding
from kvmdbg.errors import GuestFault, RunawayGuestError
from kvmdbg.kvm.runtime import Step

if TYPE_CHECKING:
    from kvmdbg.arch.a64 import Insn, Program
    from kvmdbg.arch.registers import SysReg
    from kvmdbg.cpu.pe import PhysicalCPU
    from kvmdbg.kvm.runtime import Kvm
    from kvmdbg.trace import Event

__all__ = ["RunResult", "GuestException", "Exit", "GuestMemory", "GuestHost", "run_program", "DONE_HVC"]


class GuestHost(Protocol):
    """What the executor needs of the machine it runs a guest on; :class:`kvmdbg.Machine` is one.

    Only this, so that this module depends on nothing above it (the machine imports the
    executor, never the other way round).
    """

    kvm: Kvm
    pe: PhysicalCPU

    def vcpu_index(self, vcpu: int) -> int: ...

    def drive(self, ops: Iterable[Step]) -> list[Event]: ...

    def record(self, s: Step) -> Event: ...

    def guest_write(self, reg: str | int, value: int, vcpu: int = 0) -> None: ...

    def guest_read(self, reg: str | int, vcpu: int = 0) -> int: ...

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
DONE_HVC = 0xFFFF  # "hvc #0xffff": the kit's test-done hypercall
_VA_MASK = ((1 << 49) - 1) & ~3  # DBGBVR_EL1 compares VA[48:2]
_WVA_MASK = ((1 << 49) - 1) & ~7  # DBGWVR_EL1 holds VA[48:3]; BAS selects bytes of that doubleword
# The control fields the executor reads, from the register table (Arm ARM DBGBCR<n>_EL1, DBGWCR<n>_EL1).
_BCR, _WCR = REGISTERS["DBGBCR0_EL1"], REGISTERS["DBGWCR0_EL1"]
_BCR_E, _BCR_PMC_EL1 = _BCR.field("E").mask, _BCR.encode(PMC=0b01)  # PMC[0]: match at EL1
_WCR_E, _WCR_PAC_EL1 = _WCR.field("E").mask, _WCR.encode(PAC=0b01)  # PAC[0]: match at EL1
_WCR_BAS, _WCR_LSC = _WCR.field("BAS"), _WCR.field("LSC")
_ISS_DEBUG = 0x22  # IFSC/DFSC "debug exception"
_SMCCC_RET_NOT_SUPPORTED = M64  # -1
# Kinds of compiled instruction.
_PURE, _MEM, _SPECIAL = 0, 1, 2
# The ALU instructions, after which execution always goes on at pc + 4 (every other pure one branches).
_FALLS_THROUGH = frozenset({"movz", "movn", "movk", "add_imm", "sub_imm", "orr_imm", "add_reg", "sub_reg",
                            "orr_reg", "adr", "nop", "isb"})


@dataclass(frozen=True, slots=True)
class GuestException:
    """One exception the guest took (``el`` 1) or that was routed to the hypervisor (``el`` 2)."""

    kind: str  # "brk", "breakpoint", "watchpoint", "step", "undef"
    pc: int  # the preferred return address (ELR): the faulting instruction; for a step, the next one
    esr: int
    el: int
    far: int | None = None

    @property
    def ec(self) -> int:
        return (self.esr >> 26) & 0x3F


@dataclass(frozen=True, slots=True)
class Exit:
    """One exit from the guest to KVM: ``reason`` is "sysreg", "hvc" or "debug"."""

    reason: str
    pc: int
    esr: int


class GuestMemory:
    """Byte-addressed guest memory for one run; never-written bytes read as 0 (little-endian)."""

    __slots__ = ("_bytes", "_image")

    def __init__(self) -> None:
        self._bytes: dict[int, int] = {}
        self._image: dict[int, int] = {}  # the program's bytes, shared with the program cache: never written

    def read(self, address: int, size: int) -> int:
        b, image = self._bytes, self._image
        out = 0
        for k in range(size):
            a = address + k
            byte = b.get(a)
            out |= (image.get(a, 0) if byte is None else byte) << (8 * k)
        return out

    def write(self, address: int, size: int, value: int) -> None:
        b = self._bytes
        for k in range(size):
            b[address + k] = (value >> (8 * k)) & 0xFF

    def load_image(self, image: dict[int, int]) -> None:
        """The program's bytes at their addresses, under anything written later (not copied: a
        program of 10,000 words would cost more to copy than to run)."""
        self._image = image

    def as_dict(self) -> dict[int, int]:
        """A copy: address -> byte."""
        return self._image | self._bytes

    def __len__(self) -> int:
        return len(self._image.keys() | self._bytes.keys()) if self._image else len(self._bytes)

    def __repr__(self) -> str:
        return f"<GuestMemory {len(self)} bytes>"


@dataclass
class RunResult:
    """What a run did: final registers, exceptions, exits, instruction count, memory."""

    regs: dict[str, int]
    exceptions: list[GuestException] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)
    steps: int = 0
    memory: GuestMemory = field(default_factory=GuestMemory)
    stop_reason: str = ""
    pc: int = 0

    def of_kind(self, kind: str) -> list[GuestException]:
        return [e for e in self.exceptions if e.kind == kind]


def _cond_holds(cond: int, n: int = 0, z: int = 0, c: int = 0, v: int = 0) -> bool:
    """``ConditionHolds()`` (Arm ARM, J1 shared pseudocode)."""
    base = cond >> 1
    result = (z == 1, c == 1, n == 1, v == 1, c == 1 and z == 0, n == v, n == v and z == 0, True)[base]
    if cond & 1 and cond != 0xF:
        result = not result
    return result


def _shifter(kind: str, amount: int, width: int) -> Callable[[int], int]:
    mask = M64 if width == 64 else M32
    if amount == 0:
        return lambda value: value & mask
    if kind == "lsl":
        return lambda value: (value << amount) & mask
    if kind == "lsr":
        return lambda value: (value & mask) >> amount
    if kind == "asr":
        sign = 1 << (width - 1)

        def asr(value: int) -> int:
            value &= mask
            return (((value ^ sign) - sign) >> amount) & mask
        return asr
    return lambda value: (((value & mask) >> amount) | (value << (width - amount))) & mask


def _undefined_at_el1(pe: PhysicalCPU, reg: SysReg, is_read: bool) -> bool:
    """Whether ``MRS``/``MSR`` of ``reg`` is UNDEFINED at EL1 by the architecture alone.

    The same rule as ``Machine._guest_access`` applies before it looks at MDCR_EL2: the Arm ARM
    gives a write-only register no MRS form and a read-only one no MSR form (MRS OSLAR_EL1 and
    MSR OSLSR_EL1 are UNDEFINED), and EL2 registers are not accessible from EL1.
    """
    if not pe.has(reg.name) or reg.el == 2:
        return True
    return reg.access is (Access.WO if is_read else Access.RO)


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def run_program(machine: GuestHost, program: Program, vcpu: int = 0, max_steps: int = 100000) -> RunResult:
    """Execute ``program`` on vCPU ``vcpu`` of ``machine``; see the module docstring."""
    if isinstance(max_steps, bool):
        raise ValueError(f"max_steps must be a positive whole number, not {max_steps!r}")
    try:
        limit = operator.index(max_steps)
    except TypeError:
        raise ValueError(f"max_steps must be a positive whole number, not {max_steps!r}") from None
    if limit < 1:
        raise ValueError(f"max_steps={limit}: give at least 1 instruction")
    if not hasattr(program, "words") or not hasattr(program, "base"):
        raise TypeError(f"run needs a Program from kvmdbg.assemble(), not {type(program).__name__}")
    index = machine.vcpu_index(vcpu)
    return _Runner(machine, program, index, limit).run()


class _Compiled:
    """One program decoded and compiled: the closures, the register list they act on, its bytes.

    The closures of :meth:`_Runner._compile` read and write the list ``x`` they were built
    over, so a compiled program can serve one run at a time; ``busy`` says it is in use.
    """

    __slots__ = ("key", "x", "code", "pure_at", "runs_at", "image", "busy")

    def __init__(self, key: tuple[int, tuple[int, ...]], x: list[int],
                 code: list[tuple[int, Callable[[int], int] | None, Insn]], image: dict[int, int]) -> None:
        self.key, self.x, self.code, self.image, self.busy = key, x, code, image, True
        # The closure of each ALU / branch instruction by its address (the run loop's fast path),
        # and, at each address where a run of them starts, the whole run: the closures up to and
        # including the first branch (or up to the next instruction of another kind). The same
        # closures, called in the same order; only the look-up between them is saved.
        base = key[0]
        self.pure_at = {base + 4 * k: fn for k, (kind, fn, _insn) in enumerate(code) if kind == _PURE}
        self.runs_at: dict[int, tuple[Callable[[int], int], ...]] = {}
        run: list[Callable[[int], int]] = []
        start = 0
        for k, (kind, fn, insn) in enumerate([*code, (_SPECIAL, None, None)]):
            if kind == _PURE and fn is not None:
                if not run:
                    start = k
                run.append(fn)
                if insn is not None and insn.op not in _FALLS_THROUGH:
                    kind = _SPECIAL  # a branch ends the run after itself
                    fn = None
                else:
                    continue
            if len(run) > 1:
                self.runs_at[base + 4 * start] = tuple(run)
            run = []


class _ProgramCache:
    """Decoded programs by (base, words), most recently used last: a word is decoded once, not every run.

    Decoding (``a64.decode``) costs far more than executing, so running the same program again
    (a lesson's cell run twice, a benchmark's second run) skips it, and its memory image is
    copied from the cache instead of being written byte by byte.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._entries: dict[tuple[int, tuple[int, ...]], _Compiled] = {}

    def take(self, key: tuple[int, tuple[int, ...]]) -> _Compiled | None:
        """The compiled program for ``key``, marked busy; None if there is none (or it is in use)."""
        entry = self._entries.pop(key, None)
        if entry is None or entry.busy:
            if entry is not None:
                self._entries[key] = entry
            return None
        self._entries[key] = entry  # most recently used last
        entry.busy = True
        return entry

    def give_back(self, entry: _Compiled) -> None:
        entry.busy = False
        if entry.key not in self._entries:
            self._entries[entry.key] = entry
            while len(self._entries) > self.size:
                del self._entries[next(iter(self._entries))]


_COMPILED = _ProgramCache()


class _Runner:
    def __init__(self, machine: GuestHost, program: Program, index: int, limit: int) -> None:
        self.m = machine
        self.kvm = machine.kvm
        self.pe = machine.pe
        self.index = index
        self.v = machine.kvm.vcpus[index]
        self.program = program
        self.limit = limit
        self.base = program.base
        self.count = len(program.words)
        self.bps: tuple[int, ...] = ()
        self.wps: tuple[tuple[int, int, int], ...] = ()
        self.ss_on = False
        # x0..x30, SP (31), zero-register read slot (32, always 0), zero-register write sink (33).
        regs = list(self.v.x) + [self.v.sp, 0, 0]
        compiled = _COMPILED.take((program.base, program.words))
        if compiled is None:
            self.x = regs
            self.code = [self._compile(decode(w)) for w in program.words]
            image = GuestMemory()
            for k, word in enumerate(program.words):
                image.write(self.base + 4 * k, 4, word)
            compiled = _Compiled((program.base, program.words), self.x, self.code, image.as_dict())
        else:
            self.x = compiled.x
            self.x[:] = regs
            self.code = compiled.code
        self._compiled = compiled
        self.mem = GuestMemory()
        self.mem.load_image(self._compiled.image)
        self.result = RunResult(regs={}, memory=self.mem)

    # -- compilation --------------------------------------------------------------------

    def _compile(self, insn: Insn) -> tuple[int, Callable[[int], int] | None, Insn]:
        x = self.x
        op = insn.op
        sf = insn.sf
        mask = M64 if sf else M32

        def rd_(n: int | None, sp: bool = False) -> int:  # read slot
            assert n is not None
            return (31 if sp else 32) if n == 31 else n

        def wr_(n: int | None, sp: bool = False) -> int:  # write slot
            assert n is not None
            return (31 if sp else 33) if n == 31 else n

        sp_ops = {"add_imm": "rd rn", "sub_imm": "rd rn", "orr_imm": "rd"}.get(op, "")
        if op in ("movz", "movn", "movk"):
            d, sh, imm = wr_(insn.rd), insn.shift, insn.imm
            if op == "movz":
                val = (imm << sh) & mask
            elif op == "movn":
                val = ~(imm << sh) & mask
            else:
                r, keep = rd_(insn.rd), ~(0xFFFF << sh)

                def movk(pc: int) -> int:
                    x[d] = ((x[r] & keep) | (imm << sh)) & mask
                    return pc + 4
                return _PURE, movk, insn

            def mov(pc: int) -> int:
                x[d] = val
                return pc + 4
            return _PURE, mov, insn
        if op in ("add_imm", "sub_imm", "orr_imm"):
            d, n = wr_(insn.rd, "rd" in sp_ops), rd_(insn.rn, "rn" in sp_ops)
            if op == "orr_imm":
                imm = insn.imm

                def orr_i(pc: int) -> int:
                    x[d] = (x[n] | imm) & mask
                    return pc + 4
                return _PURE, orr_i, insn
            imm = insn.imm << insn.shift
            if op == "sub_imm":
                imm = -imm

            def add_i(pc: int) -> int:
                x[d] = (x[n] + imm) & mask
                return pc + 4
            return _PURE, add_i, insn
        if op in ("add_reg", "sub_reg", "orr_reg"):
            d, n, mm = wr_(insn.rd), rd_(insn.rn), rd_(insn.rm)
            amount = insn.shift
            if amount == 0 or insn.shift_type == "lsl":
                # No shift or LSL, the common forms, inlined: masking the sum (or OR) once is the
                # same as masking the shifted operand first, since the mask is 2**width - 1.
                if op == "orr_reg":
                    def orr_lsl(pc: int) -> int:
                        x[d] = (x[n] | (x[mm] << amount)) & mask
                        return pc + 4
                    return _PURE, orr_lsl, insn
                if op == "add_reg":
                    def add_lsl(pc: int) -> int:
                        x[d] = (x[n] + (x[mm] << amount)) & mask
                        return pc + 4
                    return _PURE, add_lsl, insn

                def sub_lsl(pc: int) -> int:
                    x[d] = (x[n] - (x[mm] << amount)) & mask
                    return pc + 4
                return _PURE, sub_lsl, insn
            shf = _shifter(insn.shift_type, amount, 64 if sf else 32)
            if op == "orr_reg":
                def orr_r(pc: int) -> int:
                    x[d] = (x[n] | shf(x[mm])) & mask
                    return pc + 4
                return _PURE, orr_r, insn
            sign = -1 if op == "sub_reg" else 1

            def add_r(pc: int) -> int:
                x[d] = (x[n] + sign * shf(x[mm])) & mask
                return pc + 4
            return _PURE, add_r, insn
        if op == "adr":
            d, off = wr_(insn.rd), insn.offset or 0

            def adr(pc: int) -> int:
                x[d] = (pc + off) & M64
                return pc + 4
            return _PURE, adr, insn
        if op in ("b", "bl"):
            off = insn.offset or 0
            if op == "b":
                return _PURE, lambda pc: pc + off, insn

            def bl(pc: int) -> int:
                x[30] = pc + 4
                return pc + off
            return _PURE, bl, insn
        if op == "b_cond":
            off = insn.offset or 0
            taken = _cond_holds(insn.cond or 0)
            return _PURE, (lambda pc: pc + off) if taken else (lambda pc: pc + 4), insn
        if op in ("cbz", "cbnz"):
            t, off = rd_(insn.rt), insn.offset or 0
            want_zero = op == "cbz"

            def cb(pc: int) -> int:
                return pc + off if ((x[t] & mask) == 0) == want_zero else pc + 4
            return _PURE, cb, insn
        if op == "ret":
            n = rd_(insn.rn)
            return _PURE, lambda pc: x[n], insn
        if op in ("nop", "isb"):
            return _PURE, lambda pc: pc + 4, insn
        if op in ("ldr", "str", "ldr_lit"):
            return _MEM, None, insn
        return _SPECIAL, None, insn

    # -- debug state -----------------------------------------------------------------------

    def _refresh(self) -> None:
        """Re-read which breakpoints/watchpoints/step the PE has enabled (after any sysreg access/exit)."""
        r = self.pe.regs
        bps = []
        for n in self.pe.breakpoint_slots():
            bcr = r[f"DBGBCR{n}_EL1"]
            if bcr & _BCR_E and bcr & _BCR_PMC_EL1:  # enabled, and matching at EL1
                bps.append(r[f"DBGBVR{n}_EL1"] & _VA_MASK)
        wps = []
        for n in self.pe.watchpoint_slots():
            wcr = r[f"DBGWCR{n}_EL1"]
            if wcr & _WCR_E and wcr & _WCR_PAC_EL1:  # enabled, and matching at EL1
                wps.append((r[f"DBGWVR{n}_EL1"] & _WVA_MASK, _WCR_BAS.extract(wcr), _WCR_LSC.extract(wcr)))
        self.bps, self.wps = tuple(bps), tuple(wps)
        self.ss_on = bool(r["MDSCR_EL1"] & 1)

    # -- exceptions ------------------------------------------------------------------------

    def _guest_exception(self, kind: str, pc: int, syndrome: int, why: str, far: int | None = None) -> None:
        v = self.v
        v.pc = pc
        self.kvm.take_guest_exception(v, syndrome, why, far)
        self.m.record(Step("guest exception", "guest", why, self.index))
        self.result.exceptions.append(GuestException(kind, pc, syndrome, 1, far))

    def _to_el2(self, kind: str, pc: int, syndrome: int, why: str, far: int | None = None) -> None:
        """A debug exception routed to EL2: KVM_EXIT_DEBUG, KVM_RUN returns, the vCPU is put."""
        self.result.exceptions.append(GuestException(kind, pc, syndrome, 2, far))
        self.result.exits.append(Exit("debug", pc, syndrome))
        self.v.pc = pc
        self._sync_out()
        self.m.drive(self.kvm.exit(self.index, syndrome, f"{why}: routed to EL2 by MDCR_EL2.TDE"))
        self.m.record(Step("kvm_handle_guest_debug", "handle",
                            f"{kind} exception at {pc:#x}: KVM_EXIT_DEBUG to userspace", self.index))
        self.m.drive(self.kvm.vcpu_put(self.index))
        raise _Stop("KVM_EXIT_DEBUG")

    def _debug(self, kind: DebugKind, name: str, pc: int, ec_cur: int, iss: int, why: str,
               far: int | None = None) -> bool:
        """Take a breakpoint/watchpoint/step exception if the PE generates it; True if taken."""
        verdict = self.pe.debug_verdict(kind)
        if not verdict.generated:
            return False
        if verdict.target_el == 2:
            self._to_el2(name, pc, esr(ec_cur - 1, iss), why, far)
        self._guest_exception(name, pc, esr(ec_cur, iss), f"{why}: {verdict.reason}", far)
        return True

    def _sync_out(self) -> None:
        """Write the general registers back to the vCPU (and PSTATE.D, which the PE holds)."""
        v, x = self.v, self.x
        v.x[:] = x[:31]
        v.sp = x[31]
        if v.running:
            v.pstate_d = self.pe.pstate_d

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            _COMPILED.give_back(self._compiled)

    def _run(self) -> RunResult:
        m, v, pe = self.m, self.v, self.pe
        if not v.running:
            m.drive(self.kvm.enter(self.index))
        self._refresh()
        res = self.result
        code, base, count, limit = self.code, self.base, self.count, self.limit
        pc = base
        steps = 0
        pure_at, runs_at = self._compiled.pure_at.get, self._compiled.runs_at.get
        try:
            while True:
                if not (self.bps or self.ss_on):
                    # The fast path: no breakpoint armed and no step active, and ALU / branch
                    # instructions cannot arm one (only a system register access or an exit can,
                    # and those leave this loop), so run them back to back without the checks
                    # below; anything else (another kind of instruction, a PC outside the program,
                    # the step limit) goes to the full loop.
                    left = limit - steps
                    while left > 0:
                        run = runs_at(pc)
                        if run is not None and len(run) <= left:
                            for each in run:
                                pc = each(pc)
                            left -= len(run)
                            continue
                        one = pure_at(pc)
                        if one is None:
                            break
                        pc = one(pc)
                        left -= 1
                    steps = limit - left
                off = pc - base
                if off < 0 or off & 3 or (off >> 2) >= count:
                    raise _Stop("end" if pc == base + 4 * count else "left program")
                kind, fn, insn = code[off >> 2]
                dbg = self.bps or self.ss_on
                stepping = False
                if dbg:
                    if self.ss_on:
                        verdict = pe.debug_verdict(DebugKind.SOFTWARE_STEP)
                        if verdict.generated:
                            if v.pstate_ss:
                                stepping = True
                            else:  # active-pending: taken before this instruction
                                self._debug(DebugKind.SOFTWARE_STEP, "step", pc, EC.SOFTSTP_CUR,
                                            1 << 24 | _ISS_DEBUG, "software step (active-pending)")
                                v.pstate_ss = True  # guest_ss_handler: SPSR.SS = 1
                                stepping = True
                    if pc in self.bps and self._debug(DebugKind.BREAKPOINT, "breakpoint", pc,
                                                      EC.BREAKPOINT_CUR, _ISS_DEBUG,
                                                      f"hardware breakpoint at {pc:#x}"):
                        pe.pstate_d = True  # guest_hw_bp_handler: SPSR.D = 1, return to the same pc
                        v.pstate_ss = False
                        continue
                steps += 1
                if steps > limit:
                    steps -= 1
                    raise RunawayGuestError(
                        f"the guest program did not finish within max_steps={limit} instructions "
                        f"(stopped at pc={pc:#x}: {insn.op}); it may loop forever: check its branches, "
                        "or pass a larger max_steps")
                if kind == _PURE:
                    assert fn is not None
                    npc = fn(pc)
                elif kind == _MEM:
                    npc = self._mem(pc, insn)
                    if npc < 0:  # a watchpoint was taken: the handler returns to this instruction
                        continue
                else:
                    npc = self._special(pc, insn)
                    if npc < 0:  # an exception was taken instead of executing
                        v.pstate_ss = False
                        pc = -npc - 1
                        continue
                if stepping:
                    v.pstate_ss = False
                    if self.ss_on and self._debug(DebugKind.SOFTWARE_STEP, "step", npc, EC.SOFTSTP_CUR,
                                                  1 << 24 | _ISS_DEBUG, "software step completed"):
                        v.pstate_ss = True  # guest_ss_handler: SPSR.SS = 1
                pc = npc
        except _Stop as stop:
            res.stop_reason = stop.reason
        except RunawayGuestError as err:
            res.stop_reason = "max_steps"
            self._finish(pc, steps)
            err.result = res  # type: ignore[attr-defined]
            raise
        self._finish(pc, steps)
        return res

    def _finish(self, pc: int, steps: int) -> None:
        res = self.result
        if self.v.running:
            self.v.pc = pc
        self._sync_out()
        res.steps = steps
        res.pc = pc
        res.regs = {f"x{n}": self.x[n] for n in range(31)} | {"sp": self.x[31]}

    # -- loads and stores --------------------------------------------------------------

    def _mem(self, pc: int, insn: Insn) -> int:
        x = self.x
        if insn.op == "ldr_lit":
            address, store = pc + (insn.offset or 0), False
        else:
            assert insn.rn is not None
            address, store = (x[insn.rn] + insn.imm) & M64, insn.op == "str"
        size = insn.size
        if self.wps:
            for wvr, bas, lsc in self.wps:
                if not lsc & (2 if store else 1):
                    continue
                hit = any(bas >> (a - wvr) & 1 for a in range(address, address + size) if 0 <= a - wvr < 8)
                if hit and self._debug(DebugKind.WATCHPOINT, "watchpoint", pc, EC.WATCHPT_CUR,
                                       (int(store) << 6) | _ISS_DEBUG,
                                       f"watchpoint hit by a {size}-byte {'store' if store else 'load'} "
                                       f"of {address:#x}", far=address):
                    self.pe.pstate_d = True  # guest_wp_handler: SPSR.D = 1, return to the same pc
                    self.v.pstate_ss = False
                    return -1
        assert insn.rt is not None
        if store:
            self.mem.write(address, size, x[insn.rt] if insn.rt != 31 else 0)
        elif insn.rt != 31:
            x[insn.rt] = self.mem.read(address, size)
        return pc + 4

    # -- everything else ------------------------------------------------------------------

    def _undef(self, pc: int, why: str) -> int:
        self._guest_exception("undef", pc, esr(EC.UNKNOWN), why)
        return -(pc + 4) - 1  # the guest's handler skips the instruction

    def _special(self, pc: int, insn: Insn) -> int:
        """Returns the next pc, or ``-(handler return pc) - 1`` when an exception was taken."""
        op, x, m, v = insn.op, self.x, self.m, self.v
        if op in ("msr", "mrs"):
            assert insn.sysreg is not None and insn.rt is not None
            reg = lookup_encoding(insn.sysreg)
            if reg is None:
                return self._undef(pc, f"{op} of {insn.sysreg.generic_name()}: no such register in the "
                                       "model; UNDEFINED")
            rt = insn.rt
            v.pc = pc
            # An access the architecture makes UNDEFINED at EL1 (MRS of a write-only register such
            # as OSLAR_EL1, MSR of a read-only one such as OSLSR_EL1, an EL2 register, a register
            # this PE lacks) is taken at the guest's own EL1 before any trap to EL2 is considered,
            # so it is no exit (Machine._guest_access raises the UNDEF without entering KVM).
            trap = None if _undefined_at_el1(self.pe, reg, op == "mrs") else self.pe.traps_to_el2(reg.name)
            if trap and reg.encoding is not None:
                self.result.exits.append(Exit("sysreg", pc, esr_sysreg(reg.encoding, rt, op == "mrs")))
            try:
                if op == "msr":
                    m.guest_write(reg.name, x[rt] if rt != 31 else 0, vcpu=self.index)
                else:
                    value = m.guest_read(reg.name, vcpu=self.index)
                    if rt != 31:
                        x[rt] = value
            except GuestFault as fault:
                self.result.exceptions.append(GuestException("undef", pc, fault.esr, 1))
                self._refresh()
                return -(pc + 4) - 1
            self._refresh()
            return pc + 4
        if op in ("msr_daifset", "msr_daifclr"):
            if insn.imm & 8:
                self.pe.pstate_d = op == "msr_daifset"
            return pc + 4
        if op == "brk":
            verdict = self.pe.debug_verdict(DebugKind.BRK)
            syndrome = esr(EC.BRK64, insn.imm)
            if verdict.target_el == 2:
                self._to_el2("brk", pc, syndrome, f"brk #{insn.imm:#x}")
            self._guest_exception("brk", pc, syndrome, f"brk #{insn.imm:#x}: {verdict.reason}")
            return -(pc + 4) - 1  # guest_sw_bp_handler: pc += 4
        if op == "svc":
            # A supervisor call from EL1 is taken to EL1 (HCR_EL2.TGE is clear for a guest);
            # its preferred return address is the next instruction, which the selftest's
            # guest_svc_handler records as svc_addr (regs->pc).
            self._guest_exception("svc", pc, esr(EC.SVC64, insn.imm), f"svc #{insn.imm:#x}")
            return -(pc + 4) - 1
        if op == "hvc":
            syndrome = esr(EC.HVC64, insn.imm)
            self.result.exits.append(Exit("hvc", pc, syndrome))
            v.pc = pc + 4
            self._sync_out()
            m.drive(self.kvm.exit(self.index, syndrome, f"hvc #{insn.imm:#x}"))
            if insn.imm == DONE_HVC:
                m.record(Step("handle_hvc", "handle", "hvc #0xffff: the kit's test-done call",
                               self.index))
                m.drive(self.kvm.enter(self.index))
                raise _Stop("hvc #0xffff")
            m.record(Step("handle_hvc", "handle", "unknown SMCCC function: x0 = "
                           "SMCCC_RET_NOT_SUPPORTED (-1)", self.index))
            x[0] = _SMCCC_RET_NOT_SUPPORTED
            m.drive(self.kvm.enter(self.index))
            self._refresh()
            return pc + 4
        what = {"udf": f"udf #{insn.imm:#x} is permanently UNDEFINED",
                "eret": "eret: the model has no exception return context; treated as UNDEFINED"}
        return self._undef(pc, what.get(op, f"word {insn.word:#010x} is outside the supported A64 subset "
                                            "(UNDEFINED)"))
