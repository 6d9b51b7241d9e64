"""The machine a run may use: how many torch CPU threads (chosen once and recorded) and how much host memory.

Memory: :func:`host_memory_available` is ``MemAvailable`` of ``/proc/meminfo`` lowered to what the process's
cgroup still allows (torch-free, so ``prunelimit geometry`` can check its sizes without importing torch).

Threads:

torch starts with as many intra-op threads as OpenMP offers (usually every logical CPU of the machine), which
oversubscribes a process pinned to fewer CPUs (``taskset``, a container's cpuset, a batch scheduler) and runs
two threads on the two hyperthreads of one core, where they compete for the same floating-point units. Our
rule (ours): **one thread per physical core the process may run on**, never more than its CPU affinity mask
and never more than a cgroup CPU quota allows, shared among the processes ``torchrun`` started on this node
(``LOCAL_WORLD_SIZE``). An explicit choice wins: ``threads=`` (the CLI's ``--threads``), else the environment
variable ``PRUNELIMIT_THREADS``, else ``OMP_NUM_THREADS`` when set.

:func:`choose_threads` returns a :class:`ThreadChoice` (the count and where it came from; records go into
results as :meth:`ThreadChoice.to_dict`); :func:`use_threads` applies one for the duration of a block and
restores torch's setting afterwards, so a library call leaves no trace on its caller. A long-running library
entry point uses :func:`library_threads`: it keeps the caller's ``torch.set_num_threads`` unless that exceeds
the rule's count (oversubscription), which it lowers for the call.

>>> c = choose_threads(3)
>>> (c.threads, c.source)
(3, 'explicit')
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ThreadChoice", "allowed_cpus", "physical_cores", "cgroup_cpu_limit", "choose_threads", "use_threads",
           "library_threads", "THREADS_ENV", "host_memory_available"]

#: Environment variable that fixes the thread count of every prunelimit run (like ``--threads``).
THREADS_ENV = "PRUNELIMIT_THREADS"

_SYS_CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and its provenance.

    ``source``: ``"explicit"`` (an argument), ``"PRUNELIMIT_THREADS"``/``"OMP_NUM_THREADS"`` (the environment),
    ``"small-problem"`` (a caller's rule for tiny matrices), or ``"physical-cores"`` (the rule of the module
    docstring); ``allowed_cpus``: the affinity mask's size; ``physical_cores``: cores behind it;
    ``cgroup_limit``: the CPU quota in CPUs (None: none); ``local_processes``: processes sharing the node.
    """

    threads: int
    source: str
    allowed_cpus: int
    physical_cores: int
    cgroup_limit: float | None = None
    local_processes: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity mask; all CPUs where the OS has no such call)."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return set(os.sched_getaffinity(0))
        except OSError:  # pragma: no cover - e.g. a sandbox refusing the call
            pass
    return set(range(os.cpu_count() or 1))


def physical_cores(cpus: set[int] | None = None) -> int:
    """Distinct physical cores behind ``cpus`` (default: :func:`allowed_cpus`).

    Read from ``/sys/devices/system/cpu/cpuN/topology`` (package id, core id); where that is unavailable
    (not Linux), every CPU counts as a core.
    """
    cpus = allowed_cpus() if cpus is None else set(cpus)
    cores = set()
    for c in cpus:
        topo = _SYS_CPU / f"cpu{c}" / "topology"
        try:
            cores.add((topo.joinpath("physical_package_id").read_text().strip(),
                       topo.joinpath("core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(c)))
    return max(1, len(cores))


def cgroup_cpu_limit() -> float | None:
    """The cgroup (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``) CPU quota of this process in CPUs, or None."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:  # OpenMP's list form "2,1" (one count per nesting level): the first is torch's intra-op count
        v = int(raw.split(",")[0]) if name == "OMP_NUM_THREADS" else int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a positive integer, got {name}={raw!r}") from exc
    if v < 1:
        raise ValueError(f"{name} must be a positive integer, got {name}={raw!r}")
    return v


def choose_threads(threads: int | None = None, *, small_problem: bool = False) -> ThreadChoice:
    """The thread count of the module docstring.

    ``threads``: an explicit count (wins over everything). ``small_problem=True``: the caller knows its matrices
    are tiny (e.g. the bundled digits), where intra-op threads gain nothing and lose much to contention: 1
    thread unless the environment says otherwise.
    """
    cpus = allowed_cpus()
    cores = physical_cores(cpus)
    quota = cgroup_cpu_limit()
    local = _env_int("LOCAL_WORLD_SIZE") or 1
    info = dict(allowed_cpus=len(cpus), physical_cores=cores, cgroup_limit=quota, local_processes=local)
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got threads={threads!r}")
        return ThreadChoice(threads, "explicit", **info)
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        v = _env_int(name)
        if v is not None:
            return ThreadChoice(v, name, **info)
    if small_problem:
        return ThreadChoice(1, "small-problem", **info)
    n = min(cores, len(cpus))
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return ThreadChoice(max(1, n // local), "physical-cores", **info)


@contextlib.contextmanager
def use_threads(choice: ThreadChoice | int | None = None) -> Iterator[ThreadChoice]:
    """Set torch's intra-op thread count to ``choice`` (default :func:`choose_threads`) inside the block and
    restore the previous count afterwards (also after an exception)."""
    import torch

    if not isinstance(choice, ThreadChoice):
        choice = choose_threads(choice)
    previous = torch.get_num_threads()
    torch.set_num_threads(choice.threads)
    _ACTIVE.append(choice)
    try:
        yield choice
    finally:
        _ACTIVE.pop()
        torch.set_num_threads(previous)


#: the choices of the enclosing :func:`use_threads` blocks (innermost last)
_ACTIVE: list[ThreadChoice] = []


@contextlib.contextmanager
def library_threads() -> Iterator[ThreadChoice]:
    """The thread guard of a long-running library call: the caller's torch setting, capped at
    :func:`choose_threads` (an explicit ``PRUNELIMIT_THREADS`` wins), restored afterwards. Inside a
    :func:`use_threads` block whose count is still in force (the CLI's ``--threads`` or its rule, an enclosing
    library call) that choice is kept and reported as it is."""
    import torch

    current = torch.get_num_threads()
    if _ACTIVE and _ACTIVE[-1].threads == current:
        with use_threads(_ACTIVE[-1]) as c:
            yield c
        return
    rule = choose_threads()
    if rule.source == THREADS_ENV or current > rule.threads:
        choice = rule if rule.source == THREADS_ENV else ThreadChoice(
            rule.threads, f"capped ({rule.source})", rule.allowed_cpus, rule.physical_cores, rule.cgroup_limit,
            rule.local_processes)
    else:
        choice = ThreadChoice(current, "caller", rule.allowed_cpus, rule.physical_cores, rule.cgroup_limit,
                              rule.local_processes)
    with use_threads(choice) as c:
        yield c


def _cgroup_memory_left() -> int | None:
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            raw = Path(limit_f).read_text().strip()
            if raw == "max":
                return None
            limit = int(raw)
            if limit >= 1 << 60:  # v1's "unlimited"
                return None
            return max(0, limit - int(Path(usage_f).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def host_memory_available() -> int | None:
    """Bytes of host memory this process can still get (module docstring), or None when unknown."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None and hasattr(os, "sysconf"):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            avail = None
    cg = _cgroup_memory_left()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail
