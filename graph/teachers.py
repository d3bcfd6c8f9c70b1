"""The run's teachers: the critics, the judge, the one bound on requests in flight, and fail-fast per round."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gaptune.agents.critics import Critic, build_critics
from gaptune.agents.judge import Judge, build_judge
from gaptune.agents.llm.http_client import Limiter, request_limiter
from gaptune.agents.teacher_health import FailFast
from gaptune.graph.config import RunConfig


@dataclass
class Teachers:
    config: RunConfig
    # The pool's skills (the judge maps free-text skills onto them); read only when the judge is built.
    vocabulary: Callable[[], dict[str, str]]

    @property
    def _cache(self) -> Path:
        return Path(self.config.cache_dir) / "teacher"

    @cached_property
    def limiter(self) -> Limiter:
        """The run's one bound on teacher requests in flight, every role together (`teacher.max_concurrency`)."""
        return request_limiter(self.config.teacher.max_concurrency)

    @cached_property
    def critics(self) -> dict[str, Critic]:
        critics = build_critics(self.config.teacher, cache_dir=self._cache, limiter=self.limiter)
        return {critic.name: critic for critic in critics}

    @cached_property
    def fail_fast(self) -> FailFast:
        """Per round and critic, failed cases in a row: past `teacher.fail_fast_after` the rest are not sent."""
        return FailFast(self.config.teacher.fail_fast_after)

    @cached_property
    def judge(self) -> Judge:
        return build_judge(self.config.teacher, cache_dir=self._cache, vocabulary=self.vocabulary(),
                           embedding_model=self.config.retrieval.embedding_model, limiter=self.limiter)
