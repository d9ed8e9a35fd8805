"""Tasques benchmarks: `python -m bench.run` (or `make bench`). See docs/benchmarks.md."""
