"""N concurrent critiques vs the same N one after another, against a real HTTP server; prints the speed-up.

By default the server is the fault-injecting OpenAI-compatible test server with
a fixed latency per request, so the server (not this machine's CPU) is the
bottleneck, as with a remote API or a GPU-backed vLLM. The goal is a speed-up
of at least 0.8 x N. `--transformers-serve` measures against SmolLM2 behind
`transformers serve` instead: on a CPU-only machine that server is
compute-bound and serialises requests, so expect ~1x there.

    .venv/bin/python benchmarks/concurrent_critiques.py [--n 8] [--latency 0.5] [--transformers-serve]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from teacher_server import FaultServer, transformers_serve

from gaptune.agents.critics import Critic, build_critics
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.teacher_config import TeacherConfig
from gaptune.data.attempt import Attempt
from gaptune.data.cache import cache_dir
from gaptune.data.sample import Sample
from gaptune.data.world.world import task_split


def _reply(_: dict) -> str:
    return json.dumps({"wrong_step": 1, "missing_skill": "counting", "explanation": "miscounted"})


def _cases(n: int) -> list[tuple[Sample, Attempt]]:
    samples = task_split("compare-counts", "probe", size=n)
    return [(s, Attempt(sample_id=s.id, output="", steps=[f"count step {i}", "compare"], answer="maybe",
                        correct=False)) for i, s in enumerate(samples)]


def _run(critic: Critic, cases: list[tuple[Sample, Attempt]], workers: int) -> tuple[float, int]:
    def one(case: tuple[Sample, Attempt]) -> bool:
        try:
            critic.critique(*case)
            return True
        except TeacherError:
            return False

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        ok = sum(pool.map(one, cases))
    return time.perf_counter() - started, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.5, help="fixed server latency per request, seconds")
    parser.add_argument("--transformers-serve", action="store_true", help="measure against SmolLM2 instead")
    parser.add_argument("--cache-dir", type=Path, default=cache_dir())
    args = parser.parse_args()

    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        if args.transformers_serve:
            from gaptune.agents.llm.smollm2 import prepare_smollm2

            model = str(prepare_smollm2(args.cache_dir))
            base_url = stack.enter_context(transformers_serve(Path(model)))
            server_label = "transformers serve (SmolLM2-135M, CPU)"
            max_tokens = 32
        else:
            server = stack.enter_context(FaultServer(_reply, latency_s=args.latency))
            base_url, model = server.base_url, "fixed-latency"
            server_label = f"fixed-latency server ({args.latency:.2f} s per request)"
            max_tokens = 64
        config = TeacherConfig.model_validate({
            "critics": [{"backend": "openai", "model": model, "base_url": base_url, "max_tokens": max_tokens,
                         "timeout_s": 300, "max_retries": 0}],
            "method": "prompt", "cache": False, "max_concurrency": args.n,
        })
        critic = build_critics(config, cache_dir=Path(scratch))[0]
        cases = _cases(args.n)
        print(f"server: {server_label}", flush=True)
        sequential, ok_seq = _run(critic, cases, workers=1)
        print(f"N={args.n} critiques: sequential {sequential:.2f} s ({ok_seq} ok)", flush=True)
        concurrent, ok_conc = _run(critic, cases, workers=args.n)
        in_flight = "" if args.transformers_serve else f"; the server saw at most {server.max_in_flight} at once"
        print(f"N={args.n} critiques: concurrent {concurrent:.2f} s ({ok_conc} ok{in_flight})", flush=True)

    speedup = sequential / concurrent
    print(f"speed-up {speedup:.2f}x = {speedup / args.n:.2f} x N (goal >= 0.80 x N when the server is the bottleneck)")


if __name__ == "__main__":
    main()
