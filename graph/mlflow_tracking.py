"""MLflow tracking: one MLflow run per gaptune run, fed by the loop's observer hook (`graph/observe.py`).

What lands in MLflow: the resolved config as params; per round (the round is
the step) val/test accuracy, training-set and selection size, the gap counts,
and the teacher's calls, tokens, cost and faults; the kept adapter of each
round, then the report, its plots and metrics.json as artifacts; tags for
the student, task, selection and seed.

A resumed run continues the same MLflow run: its id is kept in the run
directory (`mlflow.json`), and a round already logged (a round re-emitted
after a kill, or the whole history replayed) is skipped, so no step appears
twice. mlflow is an optional extra, imported only when `tracking.mlflow` is set.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from gaptune.data.atomic import write_text_atomic
from gaptune.data.errors import ConfigError
from gaptune.data.live_events import LiveEvent

if TYPE_CHECKING:  # graph.config reads this module's config classes; Resources reads graph.config
    from gaptune.graph.resources import Resources

RUN_FILE = "mlflow.json"
# MLflow's limits per log_batch request.
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000


class MlflowConfig(BaseModel):
    """Where the run is tracked: a tracking URI (sqlite:///mlflow.db, a server's http://..., a file store) and
    an experiment name (created when missing)."""

    model_config = ConfigDict(extra="forbid")

    uri: str
    experiment: str = "gaptune"


class TrackingConfig(BaseModel):
    """Experiment trackers to report the run to; none by default."""

    model_config = ConfigDict(extra="forbid")

    mlflow: MlflowConfig | None = None


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The nested config as dotted keys (`trainer.epochs`), lists and nulls as JSON: MLflow params are flat strings."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, str) else json.dumps(value)
    return flat


def metric_key(text: str) -> str:
    """MLflow keys allow letters, digits, `_ - . / ` and spaces; a gap label may hold anything else."""
    return re.sub(r"[^\w\-./ ]", "_", text)


def round_metrics(record: dict[str, Any], selection_size: int | None) -> dict[str, float]:
    """The metrics of one round record (metrics.json's `rounds[i]`), keyed as they appear in MLflow."""
    metrics = {"val_acc": float(record["val_acc"]), "test_acc": float(record["test_acc"]),
               "train_size": float(record["train_size"])}
    if selection_size is not None:
        metrics["selection_size"] = float(selection_size)
    for gap, count in record.get("gaps", {}).items():
        key = f"gaps/{metric_key(gap or '(none)')}"  # gaps that differ only in a replaced character share a key
        metrics[key] = metrics.get(key, 0.0) + float(count)
    for key, value in (record.get("teacher_usage") or {}).items():
        if value is not None:
            metrics[f"teacher/{key}"] = float(value)
    return metrics


def _artifact_location(uri: str) -> str | None:
    """Beside the database for a local SQLite store (MLflow's own default is ./mlruns under whatever directory the
    process runs in); a server or file store decides for itself (None)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri[len(prefix):]).resolve().parent / "mlartifacts").as_uri()


def _tags(res: Resources) -> dict[str, str]:
    config = res.config
    student = config.student.path or f"tiny:{config.student.tiny.model_dump_json()}"
    return {"gaptune.student": student, "gaptune.task": config.task.name, "gaptune.selection": config.selection,
            "gaptune.seed": str(config.seed), "gaptune.run_dir": str(res.run.root),
            "mlflow.runName": res.run.root.name}


class MlflowTracker:
    """The observer that reports one gaptune run to one MLflow run."""

    def __init__(self, config: MlflowConfig, res: Resources, state: dict[str, Any]) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as error:
            raise ConfigError("tracking.mlflow needs MLflow: pip install 'gaptune[mlflow]' "
                              "(or remove tracking.mlflow from the config)") from error
        self.res = res
        self.client = MlflowClient(tracking_uri=config.uri)
        self.run_id = self._open_run(config)
        self.logged_rounds = {int(m.step) for m in self.client.get_metric_history(self.run_id, "val_acc")}
        self.selection_size: dict[int, int] = {}
        self._log_rounds(list(state.get("history", [])))

    def _open_run(self, config: MlflowConfig) -> str:
        """The run id kept in the run directory (a resumed run), or a new run with the config and tags."""
        path = self.res.run.root / RUN_FILE
        if path.exists():
            kept = json.loads(path.read_text())
            if kept["uri"] != config.uri:
                raise ConfigError(f"{path}: this run was tracked at {kept['uri']!r}, but tracking.mlflow.uri is now "
                                  f"{config.uri!r}; set it back to continue the same MLflow run")
            self.client.update_run(kept["run_id"], status="RUNNING")
            return str(kept["run_id"])
        try:
            experiment = self.client.get_experiment_by_name(config.experiment)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
                config.experiment, artifact_location=_artifact_location(config.uri))
        except Exception as error:
            raise ConfigError(f"tracking.mlflow.uri {config.uri!r}: cannot open the MLflow store ({error})") from error
        run = self.client.create_run(experiment_id, tags=_tags(self.res), run_name=self.res.run.root.name)
        run_id = str(run.info.run_id)
        self._log_params(run_id)
        write_text_atomic(path, json.dumps({"uri": config.uri, "experiment_id": experiment_id, "run_id": run_id}) + "\n")
        return run_id

    def _log_params(self, run_id: str) -> None:
        from mlflow.entities import Param

        params = [Param(key, value) for key, value in flat_params(self.res.config.model_dump(mode="json")).items()]
        for start in range(0, len(params), _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=params[start:start + _PARAMS_PER_BATCH])

    def _log_rounds(self, history: list[dict[str, Any]]) -> None:
        """Every round of `history` not logged yet, each in one batch (a round is in MLflow whole or not at all)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for record in history:
            step = int(record["round"])
            if step in self.logged_rounds:
                continue
            metrics = [Metric(key, value, now, step)
                       for key, value in round_metrics(record, self.selection_size.get(step)).items()]
            for start in range(0, len(metrics), _METRICS_PER_BATCH):
                self.client.log_batch(self.run_id, metrics=metrics[start:start + _METRICS_PER_BATCH])
            self.logged_rounds.add(step)

    def _log_artifact(self, path: Path, folder: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), folder)
        elif path.exists():
            self.client.log_artifact(self.run_id, str(path), folder)

    def node_started(self, node: str, key: UUID, inputs: dict[str, Any]) -> None:
        if node == "choose":
            self.selection_size[int(inputs["round"])] = len(inputs.get("selected", []))

    def node_finished(self, node: str, key: UUID, update: dict[str, Any]) -> None:
        if node in ("start", "choose"):
            history = update.get("history", [])
            if node == "choose" and history and update.get("current_adapter"):
                round_ = int(history[-1]["round"])
                self._log_artifact(Path(update["current_adapter"]), f"rounds/{round_:02d}/adapter")
            self._log_rounds(history)
        elif node == "finish":
            run = self.res.run
            for path in (run.report, run.metrics, run.root / "accuracy.png", run.root / "gaps.png"):
                self._log_artifact(path)

    def node_failed(self, node: str, key: UUID, error: BaseException) -> None:
        return None

    def live_event(self, event: LiveEvent) -> None:
        return None

    def run_ended(self, state: dict[str, Any] | None, error: BaseException | None) -> None:
        status = "FINISHED" if error is None else "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        self.client.set_terminated(self.run_id, status=status)
