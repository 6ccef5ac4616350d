"""Peak memory of one stage: resident set size of this process (and allocated GPU memory on a GPU).

Linux keeps a process's peak RSS (``VmHWM`` in ``/proc/self/status``); writing ``5`` to
``/proc/self/clear_refs`` resets it, so each stage's peak is its own and not the run's so far.  Where that
file cannot be written, the peak is the process's since its start (``getrusage``), said in the result.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
from pathlib import Path

import torch

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def release() -> None:
    """Hand freed memory back to the system: collect garbage, then ``malloc_trim`` (glibc keeps freed heap
    memory otherwise, and the next stage would start with the last one's high-water mark in its RSS)."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to trim
        pass


def reset_peaks() -> bool:
    """Release freed memory and start measuring a new peak; False when the RSS peak could not be reset
    (then it is the process's since its start)."""
    release()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def _vm_hwm_mb() -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def peaks(reset_ok: bool = True) -> dict:
    """``peak_rss_mb`` since the last ``reset_peaks`` (``peak_rss_scope``: "stage" or "process"), and
    ``peak_gpu_mb`` (allocated by torch) when a GPU was used."""
    rss = _vm_hwm_mb()
    if rss is None:
        rss, reset_ok = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, False  # kB on Linux
    out = {"peak_rss_mb": round(rss, 1), "peak_rss_scope": "stage" if reset_ok else "process"}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out
