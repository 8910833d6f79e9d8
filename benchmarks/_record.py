"""Shared by the benchmark scripts: print a table and append it, with the command, machine and
date, to ``benchmarks/results/<name>.md``."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from pathlib import Path


def machine_description():
    """One line naming the CPU (and cores), or the GPU, torch version and date."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    threads = torch.get_num_threads()
    parts = [f"CPU: {cpu} ({os.cpu_count()} cores visible, torch threads {threads})"]
    if torch.cuda.is_available():
        parts.append(f"GPU: {torch.cuda.get_device_name(0)}")
    parts.append(f"torch {torch.__version__}")
    return "; ".join(parts)


# environment variables that change what a benchmark measures: thread counts and the memory
# allocator's behaviour (PyTorch's huge pages for large CPU tensors, glibc's malloc tunables)
_ENV_NAMES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "THP_MEM_ALLOC_ENABLE")
_ENV_PREFIXES = ("MALLOC_",)


def command_line():
    """The command as typed, with the environment settings of ``_ENV_NAMES`` and
    ``_ENV_PREFIXES`` that are set written before it, so that a record can be rerun as it ran."""
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
           if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES)]
    return " ".join(env + ["python"] + [shlex.quote(a) for a in sys.argv])


def record(name, table_markdown, notes=""):
    """Print ``table_markdown`` and append it to ``benchmarks/results/<name>.md``."""
    command = command_line()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"\n## {stamp}\n\n- command: `{command}`\n- machine: {machine_description()}\n"
        + (f"- notes: {notes}\n" if notes else "")
        + f"\n{table_markdown}\n"
    )
    print(block)
    out = Path(os.environ.get("SKPHYS_BENCH_DIR", Path(__file__).parent / "results"))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.md", "a") as fh:
        fh.write(block)
