"""Benchmarks: each module measures one thing beside a baseline from the same run.

Modules are named `bench_*.py` (and helpers have no `test_` prefix) so pytest
never collects them; `scripts/bench.sh` runs them in order and prints one table.
"""
