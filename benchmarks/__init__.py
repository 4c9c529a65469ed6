"""Benchmarks of coldchain; each module runs with ``python -m benchmarks.<name>``."""
