"""Mapping the teacher's free-text missing skills onto the pool's skill labels (real MiniLM embeddings)."""

from __future__ import annotations

import pytest

from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.tools.classify_gaps import classify_gaps


@pytest.mark.parametrize(
    ("text", "label", "how"),
    [
        ("Counting", "counting", "exact"),
        ("spatial-relation", "spatial relation", "exact"),
        ("colours", "colour", "exact"),
        ("missing counting skill", "counting", "contains"),
        ("can't count objects", "counting", "contains"),
        ("fails to tell how many circles there are", "counting", "embedding"),
        ("does not know left from right", "spatial relation", "embedding"),
        ("cannot see what differs between the two pictures", "difference", "contains"),  # stemmed: differs = difference
        ("cannot tell where the object is located", "localisation", "embedding"),
        ("unable to recognise the object's shape", "shape", "contains"),
    ],
)
def test_paraphrases_map_onto_pool_labels(text: str, label: str, how: str) -> None:
    result = classify_gaps([text], SKILL_DESCRIPTIONS)
    assert result.counts == {label: 1}
    assert (result.mapping[0].label, result.mapping[0].how) == (label, how)


def test_unrelated_skills_stay_new_labels() -> None:
    result = classify_gaps(["Reading handwritten Greek"], SKILL_DESCRIPTIONS)
    assert result.counts == {"reading handwritten greek": 1}
    assert result.mapping[0].how == "new"


def test_counts_sum_occurrences_per_label_largest_first() -> None:
    texts = ["counting", "can't count objects", "Counting", "colour", "can't count objects", ""]
    result = classify_gaps(texts, SKILL_DESCRIPTIONS)
    assert result.counts == {"counting": 4, "colour": 1}
    assert list(result.counts) == ["counting", "colour"]
    assert {m.text: m.occurrences for m in result.mapping} == {"counting": 1, "can't count objects": 2,
                                                               "Counting": 1, "colour": 1}
