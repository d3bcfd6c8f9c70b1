"""The LangGraph state machine, its run config, run directory and CLI."""
