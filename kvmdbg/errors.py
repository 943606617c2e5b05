"""The exceptions kvmdbg raises on bad input or on a guest-visible fault.

Every error names the problem and how to fix it. They live at the bottom of
the package so that every layer can raise them without importing upward.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "KvmdbgError",
    "PatchError",
    "UnknownRegisterError",
    "RegisterValueError",
    "RegisterTypeError",
    "VcpuIndexError",
    "VcpuTypeError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "NotModelledError",
    "RegisterNotModelledError",
    "ArchitecturalError",
    "DuplicateVariantError",
    "PatchTypeError",
    "ScenarioTypeError",
    "AsmTypeError",
    "check_flag",
    "check_count",
    "GuestFault",
    "AsmError",
    "RunawayGuestError",
    "ScenarioError",
    "TraceFormatError",
]


class KvmdbgError(Exception):
    """Base class of every error kvmdbg raises on purpose."""


class PatchError(KvmdbgError, ValueError):
    """An impossible variant: unknown patch names, patch 2 without patch 1, ..."""


class UnknownRegisterError(KvmdbgError, KeyError):
    """A register name or id that the model does not know."""

    def __init__(self, name: object, known: Iterable[str] = ()) -> None:
        self.name = name
        close = difflib.get_close_matches(str(name).upper(), list(known), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        self.message = (
            f"unknown register {name!r}.{hint} "
            "Use a name such as 'OSLSR_EL1' (case does not matter) or a KVM "
            "userspace id from kvmdbg.reg_id()."
        )
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError quotes its argument; we want prose.
        return self.message


class RegisterValueError(KvmdbgError, ValueError):
    """A register value that is not a 64-bit unsigned integer (or a field too wide)."""


class RegisterTypeError(RegisterValueError, TypeError):
    """A register value of the wrong type (a bool, a float, a string): also a TypeError."""


class VcpuIndexError(KvmdbgError, IndexError):
    """A vCPU index that the VM does not have."""


class VcpuTypeError(VcpuIndexError, TypeError):
    """A vCPU index or count that is not an integer (``True``, ``1.0``, ``"0"``)."""


class ArgumentTypeError(KvmdbgError, TypeError, ValueError):
    """An argument of the wrong type: the message names the argument, what was given and what is accepted.

    A TypeError, and also a ValueError, because these checks used to raise ValueError and
    callers written against that must keep working.
    """


class ArgumentValueError(KvmdbgError, ValueError):
    """An argument of the right type but an unusable value (a negative count, an unknown mode...)."""


class NotModelledError(KvmdbgError, LookupError):
    """Something the real kernel has but the model does not (a register, a userspace id).

    Raised instead of a kernel errno: the kernel would serve the request, so an
    ENOENT here would be a false answer.
    """


class RegisterNotModelledError(NotModelledError, UnknownRegisterError):
    """A well-formed KVM register id of a register the kernel has and the model does not.

    Also an :class:`UnknownRegisterError` (a ``KeyError``): unknown to the model.
    """

    def __init__(self, name: object, message: str) -> None:
        self.name = name
        self.message = message
        Exception.__init__(self, message)


class ArchitecturalError(KvmdbgError, RuntimeError):
    """Software on the PE did something the architecture makes UNDEFINED.

    Raised only for accesses the model's own host/hypervisor code would never
    make; guest accesses are decided by the trap logic and KVM instead.
    """


class DuplicateVariantError(KvmdbgError, ValueError):
    """The same kernel asked for twice in one comparison (for example ``"p3"`` and ``{"p1", "p2", "p3"}``)."""


class PatchTypeError(PatchError, TypeError):
    """A variant that is neither a name nor an iterable of patch names (``Machine(42)``)."""


class ScenarioError(KvmdbgError, ValueError):
    """An unknown built-in scenario name or an unusable scenario."""


class ScenarioTypeError(ScenarioError, TypeError):
    """A scenario that is neither a built-in name nor a callable taking one Machine."""


class TraceFormatError(KvmdbgError, ValueError):
    """An exported trace file that is truncated, corrupted or of another format."""


class AsmError(KvmdbgError, ValueError):
    """Assembly source that kvmdbg cannot assemble; names the line and column."""

    def __init__(self, message: str, line: int = 0, column: int = 0, text: str = "") -> None:
        self.line = line
        self.column = column
        self.text = text
        self.reason = message
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}{message}")


class AsmTypeError(AsmError, TypeError):
    """Assembler input of the wrong type (source not a str, base not an int)."""


class RunawayGuestError(KvmdbgError, RuntimeError):
    """A guest program that did not finish within max_steps instructions."""


class GuestFault(KvmdbgError):
    """The guest took an exception instead of completing the access.

    ``esr`` is the syndrome the guest's EL1 sees (ESR_EL1), ``ec`` its
    exception class; ``explanation`` says in words why it happened.
    """

    def __init__(self, esr: int, explanation: str, *, pc: int | None = None) -> None:
        self.esr = esr
        self.ec = (esr >> 26) & 0x3F
        self.pc = pc
        self.explanation = explanation
        super().__init__(f"guest exception, ESR_EL1={esr:#010x} (EC {self.ec:#04x}): {explanation}")


# -- argument checks every layer shares (each raises before anything changes) -----------------


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_flag(value: object, name: str) -> bool:
    """``value`` if it is a real bool, else an ArgumentTypeError naming ``name``.

    Truthiness is not enough: ``vhe="no"`` is truthy, ``single_step=2`` is not a flag.
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise ArgumentTypeError(f"{name} must be True or False, not {type(value).__name__} ({_shown(value)})")


def check_count(value: object, name: str, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high], or an ArgumentTypeError / ArgumentValueError naming ``name``."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise ArgumentTypeError(f"{name} must be an integer, not a bool ({value!r})")
    try:
        import operator

        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentTypeError(f"{name} must be an integer, not {type(value).__name__} ({_shown(value)})") from None
    if n < low or (high is not None and n > high):
        accepted = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise ArgumentValueError(f"{name}={n} is out of range: give an integer {accepted}")
    return n
