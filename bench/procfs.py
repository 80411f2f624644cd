"""CPU time and memory of a process tree, from the kernel's CPU clocks and /proc (Linux only)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn --workers N and nginx fork their workers)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                stack.extend(int(c) for c in children.read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by the process tree: each process's CPU clock
    (``clock_getcpuclockid``, all its threads, exited ones too, to the nanosecond). Where that
    is not available, utime + stime from /proc/<pid>/stat, the same time in clock ticks."""
    total = 0.0
    for member in process_tree(pid):
        exact = _cpu_clock(member)
        total += exact if exact is not None else _stat_seconds(member)
    return total


def cpu_clock_source() -> str:
    if _cpu_clock(os.getpid()) is not None:
        return "clock_getcpuclockid (ns)"
    return f"/proc/<pid>/stat utime+stime ({1000 // CLK_TCK} ms ticks)"


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


def _cpu_clock(pid: int) -> float | None:
    libc = _libc()
    if libc is None:
        return None
    clock, now = ctypes.c_int(), _Timespec()
    if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
        return None
    if libc.clock_gettime(clock, ctypes.byref(now)) != 0:
        return None
    seconds: float = now.tv_sec + now.tv_nsec / 1e9
    return seconds


def _stat_seconds(pid: int) -> float:
    """utime + stime (fields 14 and 15 of /proc/<pid>/stat); 0 when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0  # exited between listing and reading
    # The command name (field 2) may contain spaces; fields after it are split safely.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14, 15 counted from 1


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    """VmRSS (or VmHWM) from /proc/<pid>/status in MiB, summed over the process tree."""
    total_kb = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def reset_peak_rss(pid: int) -> bool:
    """Set VmHWM back to the current VmRSS (``echo 5 > /proc/<pid>/clear_refs``, Linux >= 4.0)
    for the process tree; False when not permitted."""
    try:
        for member in process_tree(pid):
            Path(f"/proc/{member}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
