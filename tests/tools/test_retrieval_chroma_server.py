"""The pool index against a real `chroma run` server instead of the embedded store."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import pool
from gaptune.tools.chroma_index import ChromaConfig
from gaptune.tools.pool_index import PoolIndex, index_pool

pytestmark = pytest.mark.slow


@pytest.fixture
def chroma_url(tmp_path: Path) -> Iterator[str]:
    executable = shutil.which("chroma", path=str(Path(sys.executable).parent))
    if executable is None:
        pytest.skip("the `chroma` CLI is not installed next to this Python")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([executable, "run", "--path", str(tmp_path / "server"), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"chroma run did not listen on port {port} within 30 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_index_and_query_through_a_chroma_server(tmp_path: Path, chroma_url: str) -> None:
    config = ChromaConfig(url=chroma_url)
    report = index_pool(pool(0, 60), tmp_path / "index", chroma=config, skill_descriptions=SKILL_DESCRIPTIONS,
                        progress=False)
    assert report.manifest.chroma_location == chroma_url
    assert not (tmp_path / "index" / "chroma").exists()
    index = PoolIndex.open(tmp_path / "index")  # the manifest remembers the server
    hits = index.query("colour: naming the colour of an object", 5, "dense")
    assert len(hits) == 5 and all("colour" in index.skills_by_id()[hit.sample_id] for hit in hits)
