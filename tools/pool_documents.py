"""The text a pool sample is indexed under, and the identity of that text.

A document is the sample's skills with their short descriptions (what a gap
query talks about) followed by its question. Gold steps are left out: they
say nothing a gap query asks about, and on templated data they multiply the
distinct texts to embed (the built-in world's pool: 6,745 with steps, 492
without). Many pool samples share one document, so the index stores one
*group* per distinct (document, task, source, skills) and maps samples onto groups:
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
    return f"skills: {skills}. question: {sample.question}"


def group_id(document: str, sample: Sample) -> str:
    """Content address of a group: equal documents with equal metadata share one id."""
    key = json.dumps([document, sample.task, sample.source, sorted(sample.skills)], ensure_ascii=True)
    return "g-" + hashlib.sha1(key.encode()).hexdigest()[:20]
