"""The gradient selector's datastore on the world pool: its build time (warm-up, features) and memory.

Builds (or resumes) the datastore of the default shipped student over the
first --pool samples of the world pool in a fresh cache folder, and prints
the warm-up and feature times, the per-sample cost, the peak resident memory
of this process and the datastore's size on disk.
Usage: python benchmarks/gradient_datastore.py [--pool 100000] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from gaptune.data.world.world import pool as world_pool
from gaptune.graph.config import load_config
from gaptune.training.gradient_datastore import DatastoreSettings, open_or_build
from gaptune.training.tiny_student import build_tiny_student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None, help="datastore folder (default: a temporary one)")
    args = parser.parse_args()
    config = load_config()
    student = build_tiny_student(Path(config.cache_dir), config.student.tiny)
    started = time.perf_counter()
    samples = list(world_pool(config.world_seed, args.pool))
    drawn = time.perf_counter() - started
    out = args.out or Path(tempfile.mkdtemp(prefix="gaptune-datastore-"))
    settings = DatastoreSettings()
    started = time.perf_counter()
    store = open_or_build(out, student, samples, settings, device="cpu")
    total = time.perf_counter() - started
    size = sum(p.stat().st_size for p in store.directory.rglob("*") if p.is_file())
    m = store.manifest
    print(f"pool {len(samples):,} samples (drawn in {drawn:.0f} s) · LoRA weights {m.parameters:,} -> "
          f"{m.projection_dim} dims")
    print(f"warm-up: {m.warmup_samples:,} samples x {settings.warmup_epochs} epochs, {m.warmup_steps} steps, "
          f"{m.warmup_seconds:.0f} s")
    print(f"features: {m.feature_seconds:.0f} s ({1000 * m.feature_seconds / len(samples):.1f} ms a sample) · "
          f"build in all {total:.0f} s")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB · "
          f"datastore on disk {size / 2**20:.0f} MiB · {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
