"""A round with two candidates (lora + connector): parallel threads (the code at --before) vs one after another (here).

Both versions run the same one-round run (the world, a small pool, a short
student, `trainer.candidates=[lora, connector]`) in child processes, each
importing gaptune from its own source tree; the code at --before is unpacked
with `git archive`. Prints, per repeat and in the median, the wall time of
the round's training phase (first train start to last train end, from the
trace) and of the whole run, and the ratios after/before.
Usage: python benchmarks/candidate_rounds.py --before c267016 [--repeats 2] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run inside the child: one run, then the training phase's wall time read from the trace.
CHILD = """
import json, sys, time
from pathlib import Path
from rich.console import Console
from gaptune.graph.config import load_config
from gaptune.graph.runner import run
run_dir, overrides = Path(sys.argv[1]), json.loads(sys.argv[2])
started = time.perf_counter()
run(load_config(None, overrides), run_dir, console=Console(quiet=True))
total = time.perf_counter() - started
events = [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines() if line]
train = [e for e in events if e["node"] == "train"]
start = min(e["time"] - e["latency_s"] for e in train)
print(json.dumps({"train_s": max(e["time"] for e in train) - start, "total_s": total, "candidates": len(train)}))
"""


def _unpack(rev: str, into: Path) -> Path:
    """The tree at `rev` as an importable `gaptune` package under `into`."""
    into.mkdir(parents=True)
    archive = into / "before.tar"
    with archive.open("wb") as handle:
        subprocess.run(["git", "-C", str(ROOT), "archive", rev], stdout=handle, check=True)
    tree = into / "gaptune"
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return into


def _link_here(into: Path) -> Path:
    (into / "gaptune").symlink_to(ROOT, target_is_directory=True)
    return into


def _one(path_root: Path, run_dir: Path, overrides: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(path_root)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(run_dir), json.dumps(overrides)], env=env, check=True,
                         capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", required=True, help="git revision of the parallel-threads code")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=None, help="shared by both versions (student, index)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gaptune-bench-") as scratch_name:
        scratch = Path(scratch_name)
        cache = args.cache_dir or scratch / "cache"
        overrides = [f"cache_dir={cache}", "selection=random", "max_rounds=1", "pool.size=2000", "task.probe_size=100",
                     "task.val_size=100", "task.test_size=50", "round_budget=400", "budget=400",
                     "trainer.candidates=[lora, connector]", f"trainer.epochs={args.epochs}", "trainer.device=cpu",
                     "student.tiny.steps=120", "student.tiny.pretrain_samples=4000", "student.tiny.text_layers=2",
                     "student.tiny.batch_size=32", "student.tiny.learning_rate=2e-3", "student.tiny.device=cpu"]
        before_root = _unpack(args.before, scratch / "before")
        (scratch / "after").mkdir()
        here_root = _link_here(scratch / "after")
        _one(here_root, scratch / "warm-up", overrides)  # builds the student and the pool index once for both
        results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for repeat in range(args.repeats):
            for name, root in (("before", before_root), ("after", here_root)):
                result = _one(root, scratch / f"{name}-{repeat}", overrides)
                results[name].append(result)
                print(f"repeat {repeat} {name:>6}: train phase {result['train_s']:.1f} s · run {result['total_s']:.1f} s "
                      f"({int(result['candidates'])} candidates)", flush=True)
        medians = {name: {key: statistics.median(r[key] for r in rows) for key in ("train_s", "total_s")}
                   for name, rows in results.items()}
        for key, label in (("train_s", "train phase"), ("total_s", "whole run")):
            before, after = medians["before"][key], medians["after"][key]
            print(f"median {label}: threads (before, {args.before}) {before:.1f} s · one after another {after:.1f} s · "
                  f"after/before {after / before:.2f}")
        print(f"cpu cores: {os.cpu_count()} · load average at the end: {os.getloadavg()[0]:.1f} · "
              f"{time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
