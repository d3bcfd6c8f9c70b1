"""gaptune: adapt a multimodal model to a task with no training data by tuning on what it gets wrong.

The public API is what `__all__` lists; everything else is internal and may move.
Names load on first use, so `import gaptune` (and `gaptune trace`) does not pull
in torch and transformers until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Attempt": "gaptune.data.attempt",
    "ConfigError": "gaptune.data.errors",
    "Critic": "gaptune.agents.critics",
    "Critique": "gaptune.data.records",
    "Evaluation": "gaptune.training.evaluate",
    "Judge": "gaptune.agents.judge",
    "JudgeDecision": "gaptune.data.records",
    "RationaleStep": "gaptune.data.sample",
    "RetrievalConfig": "gaptune.agents.retriever",
    "RunConfig": "gaptune.graph.config",
    "Sample": "gaptune.data.sample",
    "TeacherConfig": "gaptune.agents.teacher_config",
    "TeacherError": "gaptune.agents.llm.errors",
    "TrainerConfig": "gaptune.training.config",
    "Usage": "gaptune.data.records",
    "evaluate": "gaptune.training.evaluate",
    "load_config": "gaptune.graph.config",
    "load_samples": "gaptune.data.loaders",
    "load_student": "gaptune.training.student",
    "resume": "gaptune.graph.runner",
    "run": "gaptune.graph.runner",
}

__all__ = [
    "Attempt",
    "ConfigError",
    "Critic",
    "Critique",
    "Evaluation",
    "Judge",
    "JudgeDecision",
    "RationaleStep",
    "RetrievalConfig",
    "RunConfig",
    "Sample",
    "TeacherConfig",
    "TeacherError",
    "TrainerConfig",
    "Usage",
    "evaluate",
    "load_config",
    "load_samples",
    "load_student",
    "resume",
    "run",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gaptune' has no attribute {name!r}")


if TYPE_CHECKING:
    from gaptune.agents.critics import Critic
    from gaptune.agents.judge import Judge
    from gaptune.agents.llm.errors import TeacherError
    from gaptune.agents.retriever import RetrievalConfig
    from gaptune.agents.teacher_config import TeacherConfig
    from gaptune.data.attempt import Attempt
    from gaptune.data.errors import ConfigError
    from gaptune.data.loaders import load_samples
    from gaptune.data.records import Critique, JudgeDecision, Usage
    from gaptune.data.sample import RationaleStep, Sample
    from gaptune.graph.config import RunConfig, load_config
    from gaptune.graph.runner import resume, run
    from gaptune.training.config import TrainerConfig
    from gaptune.training.evaluate import Evaluation, evaluate
    from gaptune.training.student import load_student
