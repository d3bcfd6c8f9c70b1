"""Answers from the trace: why was this sample trained on, what did the teacher say about this case."""

from __future__ import annotations

from typing import Any


def _by_node(events: list[dict[str, Any]], node: str) -> list[dict[str, Any]]:
    return [e for e in events if e["node"] == node]


def _critiques_for(events: list[dict[str, Any]], round_: int, case: str) -> list[dict[str, Any]]:
    return [e for e in _by_node(events, "critique") if e["round"] == round_ and e["inputs"]["case"] == case]


def _kept_critique(events: list[dict[str, Any]], round_: int, case: str) -> dict[str, Any] | None:
    """The critique the judge kept for a case (the only one, when a single critic answered)."""
    for event in _by_node(events, "judge"):
        if event["round"] == round_ and event["inputs"]["case"] == case:
            return event["inputs"]["candidates"][event["output"]["chosen"]]
    answered = [c["output"] for c in _critiques_for(events, round_, case) if "missing_skill" in c["output"]]
    return answered[0] if answered else None


def explain_sample(events: list[dict[str, Any]], sample_id: str) -> list[dict[str, Any]]:
    """Every selection of `sample_id`: round, strategy, gap, query, method, score, rank, and the cases behind the gap."""
    reasons = []
    for event in _by_node(events, "select_data"):
        for item in event["output"]["items"]:
            if item["sample_id"] != sample_id:
                continue
            cases = event["inputs"]["cases_by_gap"].get(item["gap"], []) if item["gap"] else []
            gap_cases = []
            for case in cases:
                kept = _kept_critique(events, event["round"], case)
                if kept is not None:
                    gap_cases.append({"case": case, "teacher": kept["teacher"], "wrong_step": kept["wrong_step"],
                                      "missing_skill": kept["missing_skill"], "explanation": kept["explanation"]})
            reasons.append({"round": event["round"], "strategy": event["output"]["strategy"], **item,
                            "gap_errors": event["inputs"]["gaps"].get(item["gap"], 0), "cases": gap_cases})
    return reasons


def explain_case(events: list[dict[str, Any]], case_id: str) -> list[dict[str, Any]]:
    """What each teacher said about a wrong probe case, round by round, and which critique the judge kept."""
    rounds: dict[int, dict[str, Any]] = {}
    for event in _by_node(events, "critique"):
        if event["inputs"]["case"] == case_id:
            entry = rounds.setdefault(event["round"], {"round": event["round"], "critiques": [], "judge": None,
                                                       "student_output": event["inputs"].get("student_output")})
            entry["critiques"].append({"teacher": event["agent"], "model": event["model"], **event["output"]})
    for event in _by_node(events, "judge"):
        if event["inputs"]["case"] == case_id and event["round"] in rounds:
            rounds[event["round"]]["judge"] = event["output"]
    for event in _by_node(events, "classify_gaps"):
        if event["round"] in rounds:
            mapping = {m["text"]: m["label"] for m in event["output"]["mapping"]}
            for critique in rounds[event["round"]]["critiques"]:
                if "missing_skill" in critique:
                    critique["gap"] = mapping.get(critique["missing_skill"])
    return [rounds[r] for r in sorted(rounds)]


def explain_round(events: list[dict[str, Any]], round_: int) -> list[dict[str, Any]]:
    """The round's decisions in order, each as node, agent and output."""
    return [{"node": e["node"], "agent": e["agent"], "output": e["output"]} for e in events
            if e["round"] == round_ and e["node"] != "critique"]
