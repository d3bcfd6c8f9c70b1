"""gaptune: adapt a multimodal model to a task with no training data by tuning on what it gets wrong.

The public API is what `__all__` lists; everything else is internal and may move.
"""

from gaptune.agents.critics import Critic
from gaptune.agents.judge import Judge
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.retriever import RetrievalConfig
from gaptune.agents.teacher_config import TeacherConfig
from gaptune.data.attempt import Attempt
from gaptune.data.loaders import load_samples
from gaptune.data.records import Critique, JudgeDecision, Usage
from gaptune.data.sample import RationaleStep, Sample
from gaptune.graph.config import ConfigError, RunConfig, load_config
from gaptune.graph.runner import resume, run
from gaptune.training.evaluate import Evaluation, evaluate
from gaptune.training.lora_trainer import TrainerConfig
from gaptune.training.student import load_student

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
