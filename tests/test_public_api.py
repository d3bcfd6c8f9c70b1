import gaptune

EXPECTED = {
    "Attempt", "ConfigError", "Critic", "Critique", "Evaluation", "Judge", "JudgeDecision", "RationaleStep",
    "RetrievalConfig", "RunConfig", "Sample", "TeacherConfig", "TeacherError", "TrainerConfig", "Usage",
    "evaluate", "load_config", "load_samples", "load_student", "resume", "run",
}


def test_public_names_are_exactly_the_documented_ones() -> None:
    assert set(gaptune.__all__) == EXPECTED
    for name in gaptune.__all__:
        assert getattr(gaptune, name) is not None


def test_top_level_folders_install_as_the_gaptune_namespace() -> None:
    import gaptune.agents
    import gaptune.data
    import gaptune.graph
    import gaptune.tools
    import gaptune.training

    for package, folder in ((gaptune.agents, "agents"), (gaptune.tools, "tools"), (gaptune.graph, "graph"),
                            (gaptune.training, "training"), (gaptune.data, "data")):
        assert package.__file__ is not None and package.__file__.endswith(f"{folder}/__init__.py")
        assert package.__name__ == f"gaptune.{folder}"
