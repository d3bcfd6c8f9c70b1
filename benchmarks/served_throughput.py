"""Evaluation of the tiny student in-process vs through a vLLM server, on the same items, side by side.

Prints samples/s of each, their ratio and the share of identical answers (greedy decoding on both).
Start the server first (its own venv; see docs/training.md), then point --base-url at it:

    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True python -m vllm.entrypoints.openai.api_server \\
        --model "$(gaptune world student)" --served-model-name student --enable-lora --max-lora-rank 16 --dtype float32
    python benchmarks/served_throughput.py --base-url http://127.0.0.1:8000/v1 [--samples 500]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gaptune.data.world.world import task_split
from gaptune.graph.config import load_config
from gaptune.training.config import StudentServerConfig
from gaptune.training.evaluate import generate_outputs
from gaptune.training.served import ServedStudent
from gaptune.training.student import load_student
from gaptune.training.tiny_student import build_tiny_student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="the vLLM server's OpenAI API root, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="student", help="the name the server serves the student under")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64, help="in-process batch (left-padded)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight to the server")
    parser.add_argument("--student", type=Path, default=None)
    args = parser.parse_args()
    config = load_config()
    student = args.student or build_tiny_student(Path(config.cache_dir), config.student.tiny)
    samples = task_split("compare-counts", "test", config.world_seed)[: args.samples]
    model, processor = load_student(student)
    served = ServedStudent(StudentServerConfig(base_url=args.base_url, model=args.model,
                                               max_concurrency=args.concurrency))
    generate_outputs(model, processor, samples[:4], batch_size=4)  # warm-up, both sides
    served.generate_outputs(None, samples[:4])

    started = time.perf_counter()
    here = generate_outputs(model, processor, samples, batch_size=args.batch_size)
    in_process = time.perf_counter() - started
    started = time.perf_counter()
    there = served.generate_outputs(None, samples)
    server = time.perf_counter() - started

    agree = sum(a == b for a, b in zip(here, there, strict=True)) / len(samples)
    print(f"samples: {len(samples)}   in-process batch: {args.batch_size}   server concurrency: {args.concurrency}")
    print(f"in-process: {in_process:.2f} s  ({len(samples) / in_process:.1f} samples/s)")
    print(f"vLLM:       {server:.2f} s  ({len(samples) / server:.1f} samples/s)")
    print(f"speed-up (vLLM vs in-process): {in_process / server:.2f}x")
    print(f"identical answers: {agree:.1%}")


if __name__ == "__main__":
    main()
