"""Batched (left-padded) vs one-by-one evaluation of the tiny student on the same samples.

Prints both timings and their ratio, and checks the two give the same answers.
Usage: python benchmarks/batched_eval.py [--samples 128] [--batch-size 64] [--student PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from side_by_side import compare, student_and_samples

from gaptune.training.evaluate import generate_outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--student", type=Path, default=None)
    args = parser.parse_args()
    model, processor, samples = student_and_samples(args.student, args.samples)
    generate_outputs(model, processor, samples[:4], batch_size=4)  # warm-up
    compare(len(samples), ("one-by-one", lambda: generate_outputs(model, processor, samples, batch_size=1)),
            ("batched", lambda: generate_outputs(model, processor, samples, batch_size=args.batch_size)),
            header=f"batch size: {args.batch_size}", same="identical outputs")


if __name__ == "__main__":
    main()
