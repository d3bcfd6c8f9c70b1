from gaptune.graph.plateau import plateau_update, stop_reason


def test_progress_resets_and_small_gains_count_as_stale() -> None:
    assert plateau_update(0.50, 1, 0.56, 0.05) == (0.56, 0)
    assert plateau_update(0.50, 0, 0.53, 0.05) == (0.53, 1)
    assert plateau_update(0.50, 0, 0.40, 0.05) == (0.50, 1)


def test_stop_reasons_in_priority_order() -> None:
    base = dict(round_=1, max_rounds=3, stale_rounds=0, patience=2, used=100, budget=500)
    assert stop_reason(**base) is None
    assert stop_reason(**{**base, "stale_rounds": 2}).startswith("plateau")
    assert stop_reason(**{**base, "used": 500}).startswith("budget spent")
    assert stop_reason(**{**base, "round_": 3}).startswith("max_rounds")
    assert stop_reason(**{**base, "selector_stop": "full pool trained in one round"}).startswith("full pool")
    assert stop_reason(**{**base, "stale_rounds": 2, "selector_stop": "full pool"}).startswith("plateau")
