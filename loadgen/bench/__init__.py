"""Benchmarks run by hand (``loadgen bench ...``); their figures go in reports/BENCHMARKS.md."""
