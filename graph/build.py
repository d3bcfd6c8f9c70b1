"""The whole machine on one screen.

    start -> probe -> critique (x cases x critics) -> judge -> classify
          -> retrieve_gap (x gaps) -> merge_selection      (error-driven)
          -> select_data                                   (pool selectors: random, full, ceiling, ...)
          -> train (each candidate in turn) -> choose -> probe ... -> finish
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from gaptune.graph import nodes
from gaptune.graph.resources import Resources
from gaptune.graph.state import CritiqueTask, LoopState, RetrieveTask

Loop = CompiledStateGraph[LoopState, Resources, LoopState, LoopState]


# The two `Send` branches take a payload type of their own (`input_schema`);
# langgraph's add_node overloads do not yet accept that together with a Runtime parameter.


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> Loop:
    """The compiled loop; run it with `context=Resources(...)` (what nodes read besides the state)."""
    graph = StateGraph(LoopState, context_schema=Resources)
    graph.add_node("start", nodes.start)
    graph.add_node("probe", nodes.probe)
    graph.add_node("critique", nodes.critique, input_schema=CritiqueTask)  # type: ignore[call-overload]
    graph.add_node("judge", nodes.judge)
    graph.add_node("classify", nodes.classify)
    graph.add_node("retrieve_gap", nodes.retrieve_gap, input_schema=RetrieveTask)  # type: ignore[call-overload]
    graph.add_node("merge_selection", nodes.merge_selection)
    graph.add_node("select_data", nodes.select_data)
    graph.add_node("train", nodes.train)
    graph.add_node("choose", nodes.choose)
    graph.add_node("finish", nodes.finish)

    graph.add_edge(START, "start")
    graph.add_edge("start", "probe")
    graph.add_conditional_edges("probe", nodes.route_cases, ["critique", "finish"])
    graph.add_edge("critique", "judge")
    graph.add_edge("judge", "classify")
    graph.add_conditional_edges("classify", nodes.route_selection, ["retrieve_gap", "select_data"])
    graph.add_edge("retrieve_gap", "merge_selection")
    graph.add_conditional_edges("merge_selection", nodes.route_training, ["train", "finish"])
    graph.add_conditional_edges("select_data", nodes.route_training, ["train", "finish"])
    graph.add_edge("train", "choose")
    graph.add_conditional_edges("choose", nodes.route_after_choose, ["probe", "finish"])
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)
