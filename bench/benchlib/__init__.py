"""Modules of the performance harness (bench/run.py)."""
