"""The whole machine on one screen.

    start -> probe -> critique (x cases x critics) -> judge -> classify
          -> retrieve_gap (x gaps) -> merge_selection      (error-driven)
          -> select_data                                   (random / full / task-skills baselines)
          -> train (x candidates) -> choose -> probe ... -> finish
"""

from __future__ import annotations

from functools import partial

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from gaptune.graph import nodes
from gaptune.graph.resources import Resources
from gaptune.graph.state import LoopState


def build_graph(res: Resources, checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    graph = StateGraph(LoopState)
    graph.add_node("start", partial(nodes.start, res))
    graph.add_node("probe", partial(nodes.probe, res))
    graph.add_node("critique", partial(nodes.critique, res))
    graph.add_node("judge", partial(nodes.judge, res))
    graph.add_node("classify", partial(nodes.classify, res))
    graph.add_node("retrieve_gap", partial(nodes.retrieve_gap, res))
    graph.add_node("merge_selection", partial(nodes.merge_selection, res))
    graph.add_node("select_data", partial(nodes.select_data, res))
    graph.add_node("train", partial(nodes.train, res))
    graph.add_node("choose", partial(nodes.choose, res))
    graph.add_node("finish", partial(nodes.finish, res))

    graph.add_edge(START, "start")
    graph.add_edge("start", "probe")
    graph.add_conditional_edges("probe", partial(nodes.route_cases, res), ["critique", "finish"])
    graph.add_edge("critique", "judge")
    graph.add_edge("judge", "classify")
    graph.add_conditional_edges("classify", partial(nodes.route_selection, res), ["retrieve_gap", "select_data"])
    graph.add_edge("retrieve_gap", "merge_selection")
    graph.add_conditional_edges("merge_selection", partial(nodes.route_candidates, res), ["train", "finish"])
    graph.add_conditional_edges("select_data", partial(nodes.route_candidates, res), ["train", "finish"])
    graph.add_edge("train", "choose")
    graph.add_conditional_edges("choose", nodes.route_after_choose, ["probe", "finish"])
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)
