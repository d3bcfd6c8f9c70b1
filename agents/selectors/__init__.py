"""Selection strategies as plug-ins: one module per strategy, looked up by name in `registry`."""
