"""Any answer at all: check() never raises, and is truthy only for a reading of the right answer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kvmdbg.teach import exercises as X
from kvmdbg.teach.exercises import answers as A

# Exercises whose answer is read by one reader, with the expected value computed once.
NUMERIC = {"reset-p2": (A.read_number, 0xA), "debugver-p3": (A.read_number, 8), "esr-oslar": (A.read_hex, 0x62280420),
           "nb03-ttbr1-p2": (A.read_number, 0x1A), "nb06-trap-ec": (A.read_number, 0x18),
           "migration-errno": (A.read_errno, 22)}
EXERCISES = {name: X.get(name) for name in X.names() if name != "program-lock"}  # programs run a Machine

anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
    | st.binary(max_size=4) | st.just(...),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    | st.tuples(inner), max_leaves=5)
texts = st.text(alphabet="0123456789abcdefxXbBoO_-+ .yesnoEINVAL", max_size=12)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(EXERCISES)), answer=anything)
def test_no_answer_raises_and_feedback_always_names_the_exercise(name: str, answer: Any) -> None:
    fb = EXERCISES[name].check(answer)
    assert fb.exercise == name and fb.kind in ("correct", "wrong", "unreadable", "unanswered")
    assert bool(fb) == (fb.kind == "correct")


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(NUMERIC)), text=texts)
def test_typed_text_is_correct_only_when_it_reads_as_the_answer(name: str, text: str) -> None:
    reader, want = NUMERIC[name]
    fb = EXERCISES[name].check(text)
    try:
        value: int | None = reader(text)
    except A.AnswerFormError:
        value = None
    assert bool(fb) == (value == want and not A.is_placeholder(text)), (text, fb)


@settings(max_examples=200, deadline=None)
@given(answer=st.booleans() | st.floats() | st.lists(st.integers(), max_size=2) | st.none())
def test_numbers_are_never_bools_floats_lists_or_none(answer: Any) -> None:
    for name in ("oslsr-write-upstream", "nb05-nvhe-exit-p2", "nb08-mde-upstream", "vhe-put-p2"):
        assert not EXERCISES[name].check(answer)
