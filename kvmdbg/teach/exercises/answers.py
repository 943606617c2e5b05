"""Reading a learner's answer: one small reader per answer form.

Each reader turns what a learner typed (a Python value in a notebook cell, or
the text of a widget's box, which is always a string) into the value the
grader compares, or raises :class:`AnswerFormError` saying which forms are
accepted. A reader never repeats the learner's text in its message: a wrong
answer's feedback must not contain the right answer, and a typed answer may
contain it as a substring (``'1a'`` inside ``'0x1a'``).

The forms (docs/exercises.md has the same table):

number
    ``int`` and anything with ``__index__`` (NumPy and pandas integer scalars,
    as ``trace.to_dataframe()`` gives them), and strings: decimal ``'10'``,
    ``'0xa'``/``'0XA'``, ``'0b1010'``, ``'0o12'``, with surrounding spaces and
    ``_`` separators allowed, an optional leading ``-``. Refused as
    unreadable: ``bool`` (``True`` is not the number 1 here), floats (even
    ``10.0``), words (``'no'``, ``'unlocked'``) and every other type.
    A string of digits without a prefix is decimal; hex letters without
    ``0x`` (``'1a'``) are refused, not guessed.
hex register
    As *number*, except that a string without a prefix is read as
    hexadecimal (``'62280420'`` is 0x62280420): syndromes and register
    values are written in hex. ``0b`` still means binary.
yes/no
    ``True``/``False`` (also NumPy's ``bool_``), the integers 0 and 1 (any
    other number is refused as not a yes/no answer), and the words
    ``yes``/``no``, ``y``/``n``, ``true``/``false``, ``'1'``/``'0'``, plus
    words the question itself uses (``'taken'``/``'not taken'``).
errno
    A number (its sign is ignored: the kernel returns ``-22``, userspace sees
    ``errno`` 22) or a string: ``'22'``, ``'-22'``, an errno name in any case
    with or without a leading ``-`` (``'EINVAL'``, ``'-einval'``).
variant
    A string naming one of :data:`kvmdbg.patches.VARIANTS`, any case.
program
    A string of assembly source for :func:`kvmdbg.assemble`.

Placeholders: ``None``, ``...`` and an empty (or all-blank) string mean
"not answered yet"; :func:`is_placeholder` says so and the exercise gives
a reminder instead of a grade.
"""

from __future__ import annotations

import errno as _errno
import numbers
import operator
import re
from collections.abc import Iterable
from typing import Any

from kvmdbg.errors import KvmdbgError

__all__ = ["AnswerFormError", "is_placeholder", "read_number", "read_hex", "read_yes_no", "read_errno",
           "read_text"]


class AnswerFormError(KvmdbgError, ValueError):
    """An answer in a form the exercise cannot read (the learner is told which forms it takes)."""


_NUMBER_FORMS = "a whole number such as 7, 0x7 or 0b111"
_YES = frozenset({"yes", "y", "true", "1"})
_NO = frozenset({"no", "n", "false", "0"})
_PREFIXED = re.compile(r"0([xbo])([0-9a-f]+)")
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-f]+")


def is_placeholder(answer: Any) -> bool:
    """True for an untouched answer: ``None``, ``...`` or a blank string."""
    return answer is None or answer is Ellipsis or (isinstance(answer, str) and not answer.strip())


def _is_bool(answer: Any) -> bool:
    """``bool`` and NumPy's ``bool_`` (which is not a ``bool`` subclass)."""
    if isinstance(answer, bool):
        return True
    t = type(answer)
    return t.__module__ == "numpy" and t.__name__ in ("bool_", "bool")


def _type_name(answer: Any) -> str:
    return type(answer).__name__


def _integer(answer: Any, forms: str) -> int | None:
    """The int of an integer-like non-string answer, None for a string; AnswerFormError otherwise."""
    if isinstance(answer, str):
        return None
    if _is_bool(answer):
        raise AnswerFormError(f"True and False are not numbers here: answer with {forms}.")
    if isinstance(answer, numbers.Integral) or hasattr(type(answer), "__index__"):
        try:
            return operator.index(answer)
        except TypeError:
            pass
    if isinstance(answer, numbers.Number):
        raise AnswerFormError(f"a {_type_name(answer)} is refused, even one with nothing after the point: "
                              f"answer with {forms}.")
    raise AnswerFormError(f"a {_type_name(answer)} is not a number: answer with {forms}.")


def _parse(text: str, *, hex_default: bool, forms: str) -> int:
    s = text.strip().lower().replace("_", "")
    sign = 1
    if s.startswith(("-", "+")):
        sign, s = (-1 if s[0] == "-" else 1), s[1:].lstrip()
    m = _PREFIXED.fullmatch(s)
    if m:
        base = {"x": 16, "b": 2, "o": 8}[m.group(1)]
        try:
            return sign * int(m.group(2), base)
        except ValueError:
            raise AnswerFormError(f"that text is not a valid base-{base} number: answer with {forms}.") from None
    if hex_default and _HEX.fullmatch(s):
        return sign * int(s, 16)
    if _DECIMAL.fullmatch(s):
        return sign * int(s, 10)
    if _HEX.fullmatch(s):
        raise AnswerFormError("that text mixes digits and letters: answer with a hexadecimal number with 0x "
                              "in front (0x...), or a decimal number with digits only.")
    if re.fullmatch(r"[+-]?[0-9]*\.[0-9]*(e[+-]?[0-9]+)?", s) and any(c.isdigit() for c in s):
        raise AnswerFormError(f"decimal fractions are refused: answer with {forms}.")
    raise AnswerFormError(f"words are not numbers here: answer with {forms}.")


def read_number(answer: Any) -> int:
    """The *number* form: ints, ``__index__`` objects and number strings (no bool, float or word)."""
    value = _integer(answer, _NUMBER_FORMS)
    return value if value is not None else _parse(answer, hex_default=False, forms=_NUMBER_FORMS)


def read_hex(answer: Any) -> int:
    """The *hex register* form: as :func:`read_number`, but unprefixed strings are hexadecimal."""
    forms = "a number such as 0x62280443, 62280443 (read as hex) or an int"
    value = _integer(answer, forms)
    return value if value is not None else _parse(answer, hex_default=True, forms=forms)


def _words(text: str) -> str:
    return " ".join(text.strip().lower().strip(".!").replace("-", " ").replace("_", " ").split())


def read_yes_no(answer: Any, yes: Iterable[str] = (), no: Iterable[str] = ()) -> bool:
    """The *yes/no* form; ``yes``/``no`` add the words the question itself uses."""
    yes_words, no_words = _YES | {_words(w) for w in yes}, _NO | {_words(w) for w in no}
    accepted = ", ".join(["yes", "no", "True", "False", *list(yes)[:1], *list(no)[:1]])
    if _is_bool(answer):
        return bool(answer)
    if isinstance(answer, str):
        s = _words(answer)
        if s in yes_words:
            return True
        if s in no_words:
            return False
        raise AnswerFormError(f"that is not a yes/no answer: answer with one of {accepted}.")
    if isinstance(answer, numbers.Integral) or hasattr(type(answer), "__index__"):
        try:
            n = operator.index(answer)
        except TypeError:
            n = None
        if n in (0, 1):
            return bool(n)
        raise AnswerFormError(f"a number other than 0 or 1 is not a yes/no answer: answer with one of "
                              f"{accepted}.")
    raise AnswerFormError(f"a {_type_name(answer)} is not a yes/no answer: answer with one of {accepted}.")


def read_errno(answer: Any) -> int:
    """The *errno* form: a positive errno number (``-22``, ``'EINVAL'`` and ``'-einval'`` all give 22)."""
    forms = "an errno number such as 2 or -2, or its name such as 'ENOENT'"
    value = _integer(answer, forms)
    if value is not None:
        return abs(value)
    s = answer.strip().lstrip("-+").strip()
    if s.upper().startswith("E") and s.isalnum():
        code = getattr(_errno, s.upper(), None)
        if not isinstance(code, int):
            raise AnswerFormError(f"that is not an errno name Linux defines: answer with {forms}.")
        return code
    return abs(_parse(answer, hex_default=False, forms=forms))


def read_text(answer: Any, what: str) -> str:
    """A string answer (a variant name, a program): anything else is refused, naming ``what``."""
    if not isinstance(answer, str):
        raise AnswerFormError(f"a {_type_name(answer)} is not {what}: answer with a string.")
    return answer
