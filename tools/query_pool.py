"""The pool query as a LangChain tool, so an agent (or an LLM) can ask the pool for samples teaching a skill."""

from __future__ import annotations

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from gaptune.tools.pool_index import DEFAULT_RRF_K, Method, PoolIndex


class QueryPoolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="what the samples should teach, e.g. 'counting: counting objects'")
    k: int = Field(ge=1, description="how many samples to return")
    method: Method = Field(default="fused", description="bm25, dense, or fused (reciprocal rank fusion)")
    exclude: list[str] = Field(default_factory=list, description="sample ids never to return (already used)")


def make_query_pool_tool(index: PoolIndex, *, rrf_k: int = DEFAULT_RRF_K, oversample: float = 2.0) -> BaseTool:
    """A LangChain tool over one opened pool index; returns hits as plain dicts (sample_id, score, rank, method)."""

    def run(text: str, k: int, method: Method = "fused", exclude: list[str] | None = None) -> list[dict[str, object]]:
        hits = index.query(text, k, method, set(exclude or ()), rrf_k=rrf_k, oversample=oversample)
        return [hit.model_dump() for hit in hits]

    return StructuredTool.from_function(
        func=run, name="query_pool", args_schema=QueryPoolArgs,
        description="Find pool samples that teach a skill; already-used ids can be excluded.",
    )
