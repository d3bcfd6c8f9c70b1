"""Map the teacher's free-text missing skills onto the pool's skill vocabulary, and count them.

A teacher writes "can't count objects" where the pool says "counting"; the
retriever can only query for skills the pool knows, so each string is mapped
in three tries, cheapest and surest first: normalised exact match, a label
whose words all appear in the string (when only one does), then the nearest
label by embedding if it is similar enough. Anything else stays a new label
of its own, so an unknown weakness is reported rather than forced onto a
wrong skill. The mapping is returned with the counts for the decision trace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gaptune.data.text import normalise
from gaptune.tools.bm25_index import tokenize
from gaptune.tools.embedder import DEFAULT_EMBEDDING_MODEL, load_embedder

# 0.33: on MiniLM, paraphrases of the world's skills scored 0.35-0.64 against
# "label: description" and unrelated phrases 0.08-0.27 (tests/test_retrieval_classify.py).
DEFAULT_THRESHOLD = 0.33


class GapMapping(BaseModel):
    """How one distinct free-text skill became a label; `score` is the cosine for `embedding`, else 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    label: str
    how: Literal["exact", "contains", "embedding", "new"]
    score: float
    occurrences: int = Field(ge=1)


class GapClassification(BaseModel):
    """Error counts per canonical gap label, largest first, and the mapping that produced them."""

    model_config = ConfigDict(extra="forbid")

    counts: dict[str, int]
    mapping: list[GapMapping]


def classify_gaps(
    missing_skills: Sequence[str],
    vocabulary: Mapping[str, str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    embedding_model: str = DEFAULT_EMBEDDING_MODEL,
) -> GapClassification:
    """Map each string in `missing_skills` onto a label of `vocabulary` (label -> description) and count labels."""
    occurrences = Counter(text.strip() for text in missing_skills if text.strip())
    labels = list(vocabulary)
    by_key = {_key(label): label for label in labels}
    decided: dict[str, tuple[str, str, float]] = {}
    undecided: list[str] = []
    for text in occurrences:
        key = _key(text)
        contained = [label for label in labels if set(_key(label).split()) <= set(key.split())]
        if key in by_key:
            decided[text] = (by_key[key], "exact", 1.0)
        elif len(contained) == 1:
            decided[text] = (contained[0], "contains", 1.0)
        else:
            undecided.append(text)
    if undecided and labels:
        embedder = load_embedder(embedding_model)
        label_vectors = embedder.encode([_label_text(label, vocabulary[label]) for label in labels])
        similarity = embedder.encode(undecided) @ label_vectors.T
        for text, row in zip(undecided, similarity, strict=True):
            best = int(row.argmax())
            if row[best] >= threshold:
                decided[text] = (labels[best], "embedding", round(float(row[best]), 4))
    mapping = []
    counts: Counter[str] = Counter()
    for text, count in occurrences.items():
        label, how, score = decided.get(text, (normalise(text), "new", 1.0))
        mapping.append(GapMapping(text=text, label=label, how=how, score=score, occurrences=count))
        counts[label] += count
    return GapClassification(counts=dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
                             mapping=mapping)


def _key(text: str) -> str:
    return " ".join(tokenize(text))


def _label_text(label: str, description: str) -> str:
    return f"{label}: {description}" if description else label
