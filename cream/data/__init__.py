"""Benchmark data: loaders for the original releases and the hub, prompts, seed set and prompt pool."""
from cream.data.benchmarks import BENCHMARKS, SPLITS, Example, load_benchmark, parse_hub_record

__all__ = ["BENCHMARKS", "SPLITS", "Example", "load_benchmark", "parse_hub_record"]
