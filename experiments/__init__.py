"""Experiments on the loop: specs of arms x students x seeds, their runs, tables, plots and statistics."""
