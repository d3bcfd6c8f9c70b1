"""`error-driven`, the method: the student's classified errors (or its wrong step texts) are the gap profile."""

from __future__ import annotations

from collections import Counter

from gaptune.agents.gap_profile import wrong_step_text
from gaptune.agents.selectors.protocol import GapEvidence, Needs, PlainStrategy


def error_profile(evidence: GapEvidence) -> tuple[dict[str, int], str]:
    """The gaps the errors name: skill labels, or with `retrieval.query: step-text` the wrong steps as written.

    Arms that do not retrieve by it still record it: the round's gaps say
    what the errors were, whatever chose the data.
    """
    if evidence.query == "step-text":
        texts = Counter(wrong_step_text(attempt, step) for attempt, step in evidence.wrong_steps)
        return dict(texts), "wrong step texts (ablation: no skill analysis)"
    return dict(evidence.error_gaps), "errors"


class ErrorDriven(PlainStrategy):
    name = "error-driven"
    needs = Needs(errors=True)

    def gap_profile(self, evidence: GapEvidence) -> tuple[dict[str, int], str]:
        return error_profile(evidence)


STRATEGY = ErrorDriven
