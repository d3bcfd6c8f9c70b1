"""The metric keys a round sends to MLflow: gap labels (skills or wrong step texts) sanitised, none lost."""

from __future__ import annotations

from gaptune.graph.mlflow_tracking import metric_key, round_metrics


def test_step_text_gaps_become_valid_keys_and_colliding_ones_add_up() -> None:
    record = {"val_acc": 0.5, "test_acc": 0.25, "train_size": 10, "teacher_usage": {"calls": 3, "cost_usd": None},
              "gaps": {"count red = 2": 3, "count red > 2": 1, "counting": 2, "": 1}}
    metrics = round_metrics(record, selection_size=40)
    assert metric_key("count red = 2") == metric_key("count red > 2") == "count red _ 2"
    assert metrics["gaps/count red _ 2"] == 4.0, "two gaps sharing a key are summed, not overwritten"
    assert metrics["gaps/counting"] == 2.0 and metrics["gaps/_none_"] == 1.0
    assert metrics["selection_size"] == 40.0 and metrics["teacher/calls"] == 3.0 and "teacher/cost_usd" not in metrics
    assert sum(v for k, v in metrics.items() if k.startswith("gaps/")) == sum(record["gaps"].values())
