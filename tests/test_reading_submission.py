"""The reading component's submission as Python receives it: bounded and typed before it
is acted on, and turned into the 15 stored verdicts by the rule "unmarked findings absent"."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.labels import LABELS, NO_FINDING
from core.verdict_rules import RowState, present, verdict_for, verdicts_from_states
from dashboard.reading_submission import NOTE_LIMIT, parse_submission

FINDINGS = [lab for lab in LABELS if lab != NO_FINDING]
states_strategy = st.dictionaries(st.sampled_from(LABELS), st.sampled_from([str(s) for s in RowState]))
flags_strategy = st.fixed_dictionaries({lab: st.booleans() for lab in LABELS})


@given(states_strategy, flags_strategy)
def test_unmarked_findings_are_absent_and_no_finding_follows_the_findings(states, flags):
    verdicts = verdicts_from_states(states, flags)
    assert set(verdicts) == set(LABELS)
    truths = {lab: present(flags[lab], v) for lab, v in verdicts.items()}
    for lab in FINDINGS:
        assert truths[lab] == (states.get(lab) == "present")
        assert verdicts[lab] == verdict_for(flags[lab], truths[lab])
    said = states.get(NO_FINDING, "unset")
    expected = not any(truths[lab] for lab in FINDINGS) if said == "unset" else said == "present"
    assert truths[NO_FINDING] == expected


def test_states_naming_an_unknown_label_or_value_are_refused():
    flags = dict.fromkeys(LABELS, False)
    with pytest.raises(ValueError, match="no such label"):
        verdicts_from_states({"Dragon": "present"}, flags)
    with pytest.raises(ValueError):
        verdicts_from_states({"Mass": "maybe"}, flags)


GOOD = {"study_id": 7, "states": {"Mass": "present"}, "marks": {}, "note": "n", "shown_ms": 2400}


def test_a_good_submission_is_read_as_sent():
    sub = parse_submission({**GOOD, "marks": {"Mass": {"x": 0.2, "y": 0.9, "image_id": 3}}})
    assert sub.study_id == 7 and sub.states == {"Mass": "present"} and sub.shown_ms == 2400
    assert (sub.marks["Mass"].x, sub.marks["Mass"].y, sub.marks["Mass"].image_id) == (0.2, 0.9, 3)
    assert len(parse_submission({**GOOD, "note": "x" * (NOTE_LIMIT + 50)}).note) == NOTE_LIMIT


@pytest.mark.parametrize(
    "change",
    [
        {"study_id": True},
        {"study_id": 0},
        {"study_id": "7"},
        {"study_id": 2**64},
        {"states": ["Mass"]},
        {"states": {"Mass": "maybe"}},
        {"states": {"x" * 100: "present"}},
        {"states": {f"L{i}": "absent" for i in range(40)}},
        {"marks": {"Mass": {"x": 1.5, "y": 0.5}}},
        {"marks": {"Mass": {"x": float("nan"), "y": 0.5}}},
        {"marks": {"Mass": {"x": 0.5, "y": 0.5, "image_id": "../etc"}}},
        {"marks": {"Mass": [0.5, 0.5]}},
        {"note": {"text": "n"}},
        {"shown_ms": "long"},
    ],
)
def test_a_malformed_submission_is_refused_with_words(change):
    with pytest.raises(ValueError) as exc:
        parse_submission({**GOOD, **change})
    assert str(exc.value)


def test_nothing_submitted_is_refused():
    with pytest.raises(ValueError):
        parse_submission(None)
