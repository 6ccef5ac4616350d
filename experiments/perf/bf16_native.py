"""Does this CPU run bf16 at speed?  bf16 vs float32 time of SmolLM2-135M's linear layers, interleaved.

    OMP_NUM_THREADS=1 python experiments/perf/bf16_native.py [--repeats 5]

The shapes are SmolLM2-135M's MLP up-projection (576 -> 1536) at a decode step (16 rows) and at a scoring pass
(16 x 256 rows). `cream.models.precision` casts to bf16 only where /proc/cpuinfo shows a native bf16 flag; this prints
the flag check beside the measured ratio, so the two can be compared on any machine.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from cream.models import precision

SHAPES = {"decode (16 x 576 -> 1536)": (16, 400), "scoring (4096 x 576 -> 1536)": (16 * 256, 10)}  # rows, calls


def seconds(rows: int, dtype: torch.dtype, calls: int) -> float:
    x, w = torch.randn(rows, 576).to(dtype), torch.randn(1536, 576).to(dtype)
    for _ in range(max(1, calls // 20)):
        torch.nn.functional.linear(x, w)
    start = time.perf_counter()
    for _ in range(calls):
        torch.nn.functional.linear(x, w)
    return (time.perf_counter() - start) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"threads {torch.get_num_threads()}, native bf16 flag: {precision.cpu_has_bf16()}")
    print("| shape | float32 (ms per call) | bf16 (ms per call) | bf16 time / float32 time |")
    print("|---|---|---|---|")
    for name, (rows, calls) in SHAPES.items():
        times: dict[torch.dtype, list[float]] = {torch.float32: [], torch.bfloat16: []}
        for _ in range(args.repeats):  # interleaved: both dtypes see the same machine load
            for dtype in times:
                times[dtype].append(seconds(rows, dtype, calls))
        f32, bf16 = (statistics.median(times[d]) * 1e3 for d in (torch.float32, torch.bfloat16))
        print(f"| {name} | {f32:.3f} | {bf16:.3f} | {bf16 / f32:.2f} |")


if __name__ == "__main__":
    main()
