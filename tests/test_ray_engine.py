"""The Ray engine on a real local cluster (a head and a second node on loopback, one worker each): the pool index,
the import, the annotation (against a real OpenAI-compatible server) and the gradient datastore come out as the
single-machine path writes them."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from teacher_server import FaultServer

from gaptune.agents.annotator import annotate_pool
from gaptune.agents.teacher_config import TeacherConfig
from gaptune.data.engine import EngineConfig, LocalEngine, RayEngine, build_engine
from gaptune.data.errors import ConfigError
from gaptune.data.pool_import import POOL_FILE, REJECTS_FILE, import_pool
from gaptune.data.sample import Sample
from gaptune.data.world.world import pool
from gaptune.tools.pool_index import PoolIndex, index_pool
from gaptune.training import gradient_datastore as store

pytestmark = pytest.mark.slow  # a Ray cluster, a 10,000-sample index twice, a datastore twice

ray = pytest.importorskip("ray", reason="the Ray engine is the optional extra gaptune[ray]")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayEngine]:
    """`ray start --head` and a second node joining it, on loopback; stopped (`ray stop`) when the module ends."""
    binary = shutil.which("ray")
    if binary is None:
        pytest.skip("the `ray` command is not on PATH")
    address = f"127.0.0.1:{_free_port()}"
    common = ["--num-cpus=1", "--disable-usage-stats"]
    subprocess.run([binary, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={address.split(':')[1]}",
                    "--include-dashboard=false", f"--temp-dir={tmp_path_factory.mktemp('ray')}", *common],
                   check=True, capture_output=True)
    try:
        subprocess.run([binary, "start", f"--address={address}", "--node-ip-address=127.0.0.1", *common],
                       check=True, capture_output=True)
        engine = RayEngine(EngineConfig(name="ray", address=address, workers=2))
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        yield engine
    finally:
        ray.shutdown()
        subprocess.run([binary, "stop", "--force"], check=False, capture_output=True)


def test_the_local_engine_is_the_default_and_a_cluster_that_is_not_there_is_named() -> None:
    assert isinstance(build_engine(), LocalEngine)
    with pytest.raises(ConfigError, match="no Ray cluster answers"):
        RayEngine(EngineConfig(name="ray", address=f"127.0.0.1:{_free_port()}"))


def test_an_index_built_on_the_cluster_equals_the_local_one(cluster: RayEngine, tmp_path: Path) -> None:
    samples = list(pool(0, 10_000))
    local = index_pool(samples, tmp_path / "local", progress=False).manifest
    remote = index_pool(samples, tmp_path / "ray", progress=False, engine=cluster).manifest
    assert remote.model_dump(exclude={"chroma_location"}) == local.model_dump(exclude={"chroma_location"})
    assert remote.groups > 2000
    opened = [PoolIndex.open(tmp_path / name) for name in ("local", "ray")]
    for query in ["counting objects", "which object is bigger", "colour of the object at the top left",
                  "is there a circle", "spatial relation left of"]:
        first, second = (index.query(query, 100, method="dense") for index in opened)
        assert [h.sample_id for h in first] == [h.sample_id for h in second], query
        np.testing.assert_allclose([h.score for h in first], [h.score for h in second], atol=1e-5)


def test_an_import_checked_on_the_cluster_writes_the_same_files(cluster: RayEngine, tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    images = ["ok.png", "broken.png", "missing.png", None]
    rows = []
    for i in range(200):
        image = images[i % 7 % 4]
        question = ("<image>\n" if image else "") + f"How many cats are in picture {i}?"
        row: dict[str, object] = {"id": f"s{i}", "conversations": [{"from": "human", "value": question},
                                                                   {"from": "gpt", "value": "three"}]}
        if image:
            row["image"] = image
        rows.append(json.dumps(row))
    source = tmp_path / "pool.jsonl"
    source.write_text("\n".join(rows) + "\n")
    local = import_pool(source, tmp_path / "local", progress=False, chunk=64)
    remote = import_pool(source, tmp_path / "ray", progress=False, chunk=64, engine=cluster)
    readable = sum(images[i % 7 % 4] in ("ok.png", None) for i in range(200))
    assert (remote.samples, remote.rejected) == (local.samples, local.rejected) == (readable, 200 - readable)
    for name in (POOL_FILE, REJECTS_FILE):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_a_datastore_featurised_on_the_cluster_equals_the_local_one(cluster: RayEngine, tmp_path: Path,
                                                                    tiny_student: Path) -> None:
    samples = list(pool(0, 48))
    settings = store.DatastoreSettings(warmup_share=0.25, warmup_epochs=1, batch_size=8, projection_dim=16)
    local = store.open_or_build(tmp_path / "local", tiny_student, samples, settings, progress=False)
    # the same warm-up (it trains here either way), then the features on the cluster
    shutil.copytree(local.directory / "warmup", tmp_path / "ray" / local.directory.name / "warmup")
    remote = store.open_or_build(tmp_path / "ray", tiny_student, samples, settings, progress=False, engine=cluster)
    assert remote.features.shape == local.features.shape == (48, 16)
    # float32 sums in another order (the workers batch differently): equal to 1e-5 of the features' scale,
    # and the same direction for every sample, which is what the cosine ranking reads
    scale = float(np.abs(local.features).max())
    np.testing.assert_allclose(remote.features, local.features, rtol=1e-4, atol=1e-5 * scale)
    cosine = (remote.features * local.features).sum(1) / (
        np.linalg.norm(remote.features, axis=1) * np.linalg.norm(local.features, axis=1))
    assert cosine.min() > 1 - 1e-6


def _skills_by_picture(body: dict[str, object]) -> str:
    """An annotator whose answer depends on the sample: odd pictures teach counting, even ones colour too."""
    number = int(re.findall(r"picture (\d+)", json.dumps(body["messages"]))[0])
    return json.dumps({"sample_id": "x", "skills": ["counting"] if number % 2 else ["colour", "counting"]})


def test_an_annotation_on_the_cluster_equals_the_local_one(cluster: RayEngine, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GT_RAY_KEY", "sk-ray-test")
    bare = [Sample(id=f"p{i}", question=f"How many cats are in picture {i}?", answer="2") for i in range(40)]
    samples = [*bare[:20], Sample(id="has", question="q", answer="a", skills=["size"]), *bare[20:]]
    with FaultServer(_skills_by_picture) as server:
        config = TeacherConfig.model_validate({
            "annotator": {"backend": "openai", "model": "annot", "base_url": server.base_url,
                          "api_key_env": "GT_RAY_KEY", "timeout_s": 10.0},
            "cache": False, "max_concurrency": 2})
        for engine, name in ((None, "local"), (cluster, "ray")):  # ten annotated before, the cache keeps them
            assert annotate_pool(bare[:10], config, cache_dir=tmp_path / name, progress=False, engine=engine).annotated == 10
        local = annotate_pool(samples, config, cache_dir=tmp_path / "local", progress=False)
        remote = annotate_pool(samples, config, cache_dir=tmp_path / "ray", progress=False, engine=cluster)
    assert remote.model_dump(exclude={"usage"}) == local.model_dump(exclude={"usage"})
    assert (remote.cached, remote.annotated, remote.passed_through, remote.failed) == (10, 30, 1, {})
    assert [s.skills for s in remote.samples] == [
        ["size"] if s.id == "has" else ["counting"] if int(s.id[1:]) % 2 else ["colour", "counting"] for s in samples]
    assert remote.usage.calls == local.usage.calls == 30 and len(server.requests) == 2 * (10 + 30)
    assert set(server.authorizations) == {"Bearer sk-ray-test"}, "the key reached the cluster's workers"
    caches = [sorted((p.relative_to(tmp_path / name), p.read_bytes()) for p in (tmp_path / name / "annotations").rglob("*")
                     if p.is_file()) for name in ("local", "ray")]
    assert caches[0] == caches[1] and len(caches[0]) == 40
