"""Benchmarks: run as modules (``python -m bench.matcher``); not part of the test suite."""
