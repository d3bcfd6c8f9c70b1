"""The text a pool sample is indexed under, and the identity of that text.

A document is the sample's skills with their short descriptions (what a gap
query talks about) followed by its question and gold steps (what keeps
documents apart). Many pool samples still share one document: the built-in
world's 50,000 pool samples have only ~2,250 distinct ones, because their
questions and steps are templated. So the index stores one *group* per
distinct (document, task, source, skills) and maps samples onto groups:
each distinct text is embedded once, and the HNSW graph never holds
thousands of identical vectors (its neighbour heuristic prunes exact
duplicates, which disconnects the graph and makes k-NN return fewer than k).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from gaptune.data.sample import Sample


def document_text(sample: Sample, skill_descriptions: Mapping[str, str]) -> str:
    skills = "; ".join(
        f"{skill}: {skill_descriptions[skill]}" if skill in skill_descriptions else skill
        for skill in sample.skills
    ) or "none"
    steps = "; ".join(step.text for step in sample.steps or [])
    text = f"skills: {skills}. question: {sample.question}"
    return f"{text} steps: {steps}" if steps else text


def group_id(document: str, sample: Sample) -> str:
    """Content address of a group: equal documents with equal metadata share one id."""
    key = json.dumps([document, sample.task, sample.source, sorted(sample.skills)], ensure_ascii=True)
    return "g-" + hashlib.sha1(key.encode()).hexdigest()[:20]
