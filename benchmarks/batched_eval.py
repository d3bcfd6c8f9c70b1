"""Batched (left-padded) vs one-by-one evaluation of the tiny student on the same samples.

Prints both timings and their ratio, and checks the two give the same answers.
Usage: python benchmarks/batched_eval.py [--samples 128] [--batch-size 64] [--student PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gaptune.data.world.world import task_split
from gaptune.graph.config import load_config
from gaptune.training.evaluate import generate_outputs
from gaptune.training.student import load_student
from gaptune.training.tiny_student import build_tiny_student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--student", type=Path, default=None)
    args = parser.parse_args()
    config = load_config()
    student = args.student or build_tiny_student(Path(config.cache_dir), config.student.tiny)
    model, processor = load_student(student)
    samples = task_split("compare-counts", "test", config.world_seed)[: args.samples]
    generate_outputs(model, processor, samples[:4], batch_size=4)  # warm-up

    started = time.perf_counter()
    one_by_one = generate_outputs(model, processor, samples, batch_size=1)
    sequential = time.perf_counter() - started
    started = time.perf_counter()
    batched = generate_outputs(model, processor, samples, batch_size=args.batch_size)
    parallel = time.perf_counter() - started

    agree = sum(a == b for a, b in zip(one_by_one, batched, strict=True)) / len(samples)
    print(f"samples: {len(samples)}   batch size: {args.batch_size}")
    print(f"one-by-one: {sequential:.2f} s  ({len(samples) / sequential:.1f} samples/s)")
    print(f"batched:    {parallel:.2f} s  ({len(samples) / parallel:.1f} samples/s)")
    print(f"speed-up (batched vs one-by-one): {sequential / parallel:.1f}x")
    print(f"identical outputs: {agree:.1%}")


if __name__ == "__main__":
    main()
