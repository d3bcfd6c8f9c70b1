"""Evaluation of the tiny student in-process vs through a vLLM server, on the same items, side by side.

Prints samples/s of each, their ratio and the share of identical answers (greedy decoding on both).
Start the server first (its own venv; see docs/training.md), then point --base-url at it:

    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True python -m vllm.entrypoints.openai.api_server \\
        --model "$(gaptune world student)" --served-model-name student --enable-lora --max-lora-rank 16 --dtype float32
    python benchmarks/served_throughput.py --base-url http://127.0.0.1:8000/v1 [--samples 500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from side_by_side import compare, student_and_samples

from gaptune.training.config import StudentServerConfig
from gaptune.training.evaluate import generate_outputs
from gaptune.training.served import ServedStudent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="the vLLM server's OpenAI API root, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="student", help="the name the server serves the student under")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64, help="in-process batch (left-padded)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight to the server")
    parser.add_argument("--student", type=Path, default=None)
    args = parser.parse_args()
    model, processor, samples = student_and_samples(args.student, args.samples)
    served = ServedStudent(StudentServerConfig(base_url=args.base_url, model=args.model,
                                               max_concurrency=args.concurrency))
    generate_outputs(model, processor, samples[:4], batch_size=4)  # warm-up, both sides
    served.generate_outputs(None, samples[:4])
    compare(len(samples), ("in-process", lambda: generate_outputs(model, processor, samples, batch_size=args.batch_size)),
            ("vLLM", lambda: served.generate_outputs(None, samples)),
            header=f"in-process batch: {args.batch_size}   server concurrency: {args.concurrency}",
            same="identical answers")


if __name__ == "__main__":
    main()
