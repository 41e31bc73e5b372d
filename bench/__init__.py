"""Benchmarks: `python bench/<name>.py`; each prints one JSON object as its last line."""
