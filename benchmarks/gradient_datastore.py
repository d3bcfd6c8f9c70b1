"""The gradient selector's datastore on the world pool: its build time (warm-up, features) and memory, and the
batched per-sample gradients side by side with LESS's one backward pass per sample.

Builds (or resumes) the datastore of the default shipped student over the
first --pool samples of the world pool in a fresh cache folder, and prints
the warm-up and feature times, the per-sample cost, the peak resident memory
of this process and the datastore's size on disk. Then, with the warm-up
model, it times --compare samples both ways (batches of the datastore's size
through the LoRA layers' hooks, vs one forward and backward each, as LESS
does) and prints the ratio and the largest difference between the two.
Usage: python benchmarks/gradient_datastore.py [--pool 100000] [--compare 256] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

from gaptune.data.sample import Sample
from gaptune.data.world.world import pool as world_pool
from gaptune.graph.config import load_config
from gaptune.training import gradient_datastore as datastore
from gaptune.training.batching import training_batch
from gaptune.training.families import family_of
from gaptune.training.tiny_student import build_tiny_student


def one_at_a_time(model: object, processor: object, samples: list[Sample], names: list[str]) -> torch.Tensor:
    """LESS's way: one forward and backward per sample, the LoRA weights' gradients read off the parameters."""
    parameters = dict(model.named_parameters())  # type: ignore[attr-defined]
    rows = []
    for sample in samples:
        model.zero_grad(set_to_none=True)  # type: ignore[attr-defined]
        model(**training_batch(processor, [sample], family=family_of(model))).loss.backward()  # type: ignore[operator]
        rows.append(torch.cat([parameters[name].grad.flatten() for name in names]))
    return torch.stack(rows)


def compare(student: Path, warmup: Path, samples: list[Sample], settings: datastore.DatastoreSettings) -> None:
    model, processor, names = datastore._warm_model(student, warmup, settings, "cpu")
    started = time.perf_counter()
    batched = torch.cat([datastore._per_sample_gradients(model, processor, samples[i:i + settings.batch_size], names)
                         for i in range(0, len(samples), settings.batch_size)])
    ours = time.perf_counter() - started
    started = time.perf_counter()
    alone = one_at_a_time(model, processor, samples, names)
    theirs = time.perf_counter() - started
    difference = float((batched - alone).abs().max() / alone.abs().max())
    print(f"per-sample gradients of {len(samples)} samples: batched {len(samples) / ours:.0f} samples/s, one at a "
          f"time {len(samples) / theirs:.0f} samples/s: {theirs / ours:.1f}x; largest difference "
          f"{difference:.1e} of the largest gradient entry")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--compare", type=int, default=256, help="samples timed both ways (0: skip)")
    parser.add_argument("--out", type=Path, default=None, help="datastore folder (default: a temporary one)")
    args = parser.parse_args()
    config = load_config()
    student = build_tiny_student(Path(config.cache_dir), config.student.tiny)
    started = time.perf_counter()
    samples = list(world_pool(config.world_seed, args.pool))
    drawn = time.perf_counter() - started
    out = args.out or Path(tempfile.mkdtemp(prefix="gaptune-datastore-"))
    settings = datastore.DatastoreSettings()
    started = time.perf_counter()
    store = datastore.open_or_build(out, student, samples, settings, device="cpu")
    total = time.perf_counter() - started
    size = sum(p.stat().st_size for p in store.directory.rglob("*") if p.is_file())
    m = store.manifest
    print(f"pool {len(samples):,} samples (drawn in {drawn:.0f} s) · LoRA weights {m.parameters:,} -> "
          f"{m.projection_dim} dims")
    if args.compare:
        compare(student, store.directory / "warmup", samples[:args.compare], settings)
    print(f"warm-up: {m.warmup_samples:,} samples x {settings.warmup_epochs} epochs, {m.warmup_steps} steps, "
          f"{m.warmup_seconds:.0f} s")
    print(f"features: {m.feature_seconds:.0f} s ({1000 * m.feature_seconds / len(samples):.1f} ms a sample) · "
          f"build in all {total:.0f} s")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB · "
          f"datastore on disk {size / 2**20:.0f} MiB · {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
