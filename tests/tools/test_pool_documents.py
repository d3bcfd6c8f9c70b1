"""The text a pool sample is indexed under, and the identity (group) of that text."""

from __future__ import annotations

from gaptune.data.sample import RationaleStep, Sample
from gaptune.tools.pool_documents import document_text, group_id

DESCRIPTIONS = {"counting": "counting objects", "comparison": "comparing two quantities"}


def _sample(sample_id: str, **fields: object) -> Sample:
    base: dict[str, object] = {
        "id": sample_id, "images": ["world://x"], "question": "Are there more red objects than blue?", "answer": "yes",
        "steps": [RationaleStep(text="count red = 3", skill="counting"), RationaleStep(text="3 more than 2 = yes",
                                                                                      skill="comparison")],
        "skills": ["counting", "comparison"], "task": "compare-counts", "source": "world",
    }
    return Sample.model_validate({**base, **fields})


def test_document_names_skills_with_descriptions_then_question_and_steps() -> None:
    text = document_text(_sample("a"), DESCRIPTIONS)
    assert text == ("skills: counting: counting objects; comparison: comparing two quantities. "
                    "question: Are there more red objects than blue? steps: count red = 3; 3 more than 2 = yes")


def test_unknown_skills_stand_alone_and_missing_parts_are_said_plainly() -> None:
    assert document_text(_sample("a", skills=["ocr"], steps=None), DESCRIPTIONS) == (
        "skills: ocr. question: Are there more red objects than blue?")
    assert document_text(_sample("a", skills=[], steps=None), {}).startswith("skills: none. ")


def test_equal_documents_with_equal_metadata_share_a_group_and_any_difference_splits_it() -> None:
    first, twin = _sample("a"), _sample("b", answer="no")  # the answer is not part of the document
    assert group_id(document_text(first, DESCRIPTIONS), first) == group_id(document_text(twin, DESCRIPTIONS), twin)
    for change in ({"task": "count-shape"}, {"source": "other"}, {"skills": ["counting"]}, {"question": "How many?"}):
        other = _sample("c", **change)
        assert group_id(document_text(other, DESCRIPTIONS), other) != group_id(document_text(first, DESCRIPTIONS), first)
    reordered = _sample("d", skills=["comparison", "counting"])
    # skill order changes the document text (and so the group), never the metadata key alone
    assert group_id("same text", reordered) == group_id("same text", first)
