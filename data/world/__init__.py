"""The built-in synthetic visual world: the offline embedded default."""
