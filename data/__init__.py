"""Samples, loaders for users' data, and the built-in synthetic world."""
