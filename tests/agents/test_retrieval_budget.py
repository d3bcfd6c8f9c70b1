"""The retriever's budget arithmetic and the comparison selectors' contracts, without an index."""

from __future__ import annotations

import pytest

from gaptune.agents.retriever import RetrievalConfig, split_budget
from gaptune.agents.selectors.fixed import fixed_selection
from gaptune.agents.selectors.full_pool import full_selection
from gaptune.agents.selectors.random_draw import random_selection
from gaptune.agents.selectors.task_skills import target_skill_counts, target_step_counts
from gaptune.data.world.world import task_split


@pytest.mark.parametrize(
    ("profile", "budget", "expected"),
    [
        ({"counting": 6, "spatial relation": 3, "colour": 1}, 10, {"counting": 6, "spatial relation": 3, "colour": 1}),
        # quotas 4.2 / 2.1 / 0.7: floors 4, 2, 0; the one left goes to the largest remainder (.7)
        ({"counting": 6, "spatial relation": 3, "colour": 1}, 7, {"counting": 4, "spatial relation": 2, "colour": 1}),
        # quotas 2.4 / 1.2 / 0.4: remainders .4 tie, more errors wins -> 3, 1, 0; colour then takes one from counting
        ({"counting": 6, "spatial relation": 3, "colour": 1}, 4, {"counting": 2, "spatial relation": 1, "colour": 1}),
        ({"counting": 1, "colour": 1}, 3, {"colour": 2, "counting": 1}),  # equal errors: label order breaks the tie
        ({"counting": 50, "size": 1}, 100, {"counting": 98, "size": 2}),
        ({"counting": 5, "size": 3, "shape": 2}, 2, {"counting": 1, "size": 1}),  # budget < gaps: most errors first
        ({"counting": 4, "size": 0}, 5, {"counting": 5}),
        ({"counting": 4}, 0, {}),
        ({}, 10, {}),
    ],
)
def test_split_budget_values(profile: dict[str, int], budget: int, expected: dict[str, int]) -> None:
    allocation = split_budget(profile, budget)
    assert allocation == expected
    assert sum(allocation.values()) == (budget if any(errors > 0 for errors in profile.values()) else 0)


def test_retrieval_config_rejects_unknown_keys_and_two_chroma_locations() -> None:
    with pytest.raises(ValueError, match="extra"):
        RetrievalConfig.model_validate({"method": "fused", "top_k": 3})
    with pytest.raises(ValueError, match="not both"):
        RetrievalConfig.model_validate({"chroma": {"path": "/tmp/x", "url": "http://localhost:8000"}})
    assert RetrievalConfig.model_validate({"chroma": {"url": "http://localhost:8000"}}).chroma.url == "http://localhost:8000"


def test_random_selection_is_seeded_excludes_used_and_keeps_budget() -> None:
    pool_ids = [f"p{i}" for i in range(100)]
    used = {f"p{i}" for i in range(50)}
    first = random_selection(pool_ids, 20, used, seed=3)
    assert first.sample_ids == random_selection(pool_ids, 20, used, seed=3).sample_ids
    assert first.sample_ids != random_selection(pool_ids, 20, used, seed=4).sample_ids
    assert len(set(first.sample_ids)) == 20 and not set(first.sample_ids) & used
    short = random_selection(pool_ids, 60, used, seed=3)
    assert len(short.items) == 50 and short.shortfall == {"": 10}


def test_full_selection_is_every_unused_id_in_order() -> None:
    assert full_selection(["a", "b", "c", "d"], {"b"}).sample_ids == ["a", "c", "d"]


def test_task_skills_profile_counts_gold_steps_per_skill() -> None:
    target = task_split("compare-counts", "probe", size=20)
    # compare-counts: two counting steps and one comparison step per sample.
    assert target_skill_counts(target) == {"counting": 40, "comparison": 20}
    with pytest.raises(ValueError, match="gold rationale steps"):
        target_skill_counts([target[0].model_copy(update={"steps": None})])


def test_task_steps_profile_counts_gold_step_texts() -> None:
    target = task_split("compare-counts", "probe", size=20)
    counts = target_step_counts(target)
    assert sum(counts.values()) == 60 and all(text.startswith(("count ", "0", "1", "2", "3", "4", "5", "6", "7"))
                                              for text in counts)
    assert list(counts.values()) == sorted(counts.values(), reverse=True)


def test_fixed_selection_replays_a_list_in_order_without_used_ids() -> None:
    selection = fixed_selection(["a", "b", "c", "d"], 2, {"a"}, strategy="fixed")
    assert selection.sample_ids == ["b", "c"] and selection.strategy == "fixed" and not selection.shortfall
    assert fixed_selection(["a", "b"], 5, (), strategy="ceiling").shortfall == {"": 3}
