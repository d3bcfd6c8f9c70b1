"""The teacher's roles as protocols: any backend that fulfils them can be swapped in."""

from __future__ import annotations

from typing import Protocol

from gaptune.data.attempt import Attempt
from gaptune.data.sample import Sample
from gaptune.tools.critique import Critique


class Critic(Protocol):
    """Finds the first wrong step of an attempt and names the skill it lacked."""

    name: str

    def critique(self, sample: Sample, attempt: Attempt) -> Critique: ...
