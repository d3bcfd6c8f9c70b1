"""`error-driven`, the method: the student's errors are the gap profile, as its wrong step texts or their skills."""

from __future__ import annotations

from collections import Counter

from gaptune.agents.gap_profile import wrong_step_text
from gaptune.agents.selectors.protocol import GapEvidence, Needs, PlainStrategy


class ErrorDriven(PlainStrategy):
    name = "error-driven"
    needs = Needs(errors=True)

    def gap_profile(self, evidence: GapEvidence) -> tuple[dict[str, int], str]:
        """The wrong steps as written (`retrieval.query: step-text`, the default) or their classified skill labels."""
        if evidence.query == "step-text":
            texts = Counter(wrong_step_text(attempt, step) for attempt, step in evidence.wrong_steps)
            return dict(texts), "wrong step texts"
        return dict(evidence.error_gaps), "errors"


STRATEGY = ErrorDriven
