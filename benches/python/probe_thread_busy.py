"""How busy zuring's threads are during whole reads of nwp.zarr into a reused buffer: per thread
group (decode pool, rings, the rest), CPU time as a share of the wall time, time spent runnable
but waiting for a CPU, page faults and context switches per read, from /proc/self/task. Written for the 16-core question in the README ("On 16 cores"):
decode threads near 100% busy mean each chunk costs more there; well below, that they wait for
work. Run from the repository root after array_bench generated the data; `ZURING_THREADS`,
`ZURING_IO` and `taskset` vary the set-up.
Usage: python benches/python/probe_thread_busy.py [READS]
"""

import os
import sys
import time

import numpy as np

import zuring

PATH = "target/bench-data/array/nwp.zarr"


def task_stats() -> dict[str, tuple[str, int, int, int, int, int, int]]:
    """Per thread: name, user and system ticks, voluntary and involuntary context switches,
    minor page faults, and nanoseconds spent runnable waiting for a CPU."""
    stats = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            name = open(f"/proc/self/task/{tid}/comm").read().strip()
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            status = open(f"/proc/self/task/{tid}/status").read()
            waited = int(open(f"/proc/self/task/{tid}/schedstat").read().split()[1])
        except OSError:  # the thread ended meanwhile
            continue
        switches = [int(status.split(f"{k}_ctxt_switches:")[1].split()[0]) for k in ("voluntary", "nonvoluntary")]
        stats[tid] = (name, int(fields[11]), int(fields[12]), *switches, int(fields[7]), waited)
    return stats


def main() -> None:
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    array = zuring.open_array(PATH)
    out = np.empty(array.shape, array.dtype)
    for _ in range(5):
        array.get_basic_selection(Ellipsis, out=out)
    before, start = task_stats(), time.perf_counter()
    for _ in range(reads):
        array.get_basic_selection(Ellipsis, out=out)
    wall, after = time.perf_counter() - start, task_stats()
    mib = out.nbytes / 2**20
    print(f"ZURING_THREADS={os.environ.get('ZURING_THREADS', 'default')}, {os.cpu_count()} cpus: {wall / reads * 1000:.2f} ms a read, {mib * reads / wall:.0f} MiB/s")
    hz = os.sysconf("SC_CLK_TCK")
    groups: dict[str, list[float]] = {}
    for tid, (name, user, system, vol, invol, faults, waited) in after.items():
        if tid not in before:
            continue
        _, user0, system0, vol0, invol0, faults0, waited0 = before[tid]
        g = groups.setdefault(name.rstrip("0123456789"), [0, 0.0, 0, 0, 0, 0.0])
        g[0] += 1
        g[1] += (user - user0 + system - system0) / hz
        g[2] += vol - vol0
        g[3] += invol - invol0
        g[4] += faults - faults0
        g[5] += (waited - waited0) / 1e9
    for name, (n, cpu, vol, invol, faults, waited) in sorted(groups.items()):
        print(
            f"  {name:16s} x{n}: busy {100 * cpu / (wall * n):.0f}% of the wall time each, waiting for a CPU {100 * waited / (wall * n):.0f}%;"
            f" a read: {vol / reads:.0f} voluntary and {invol / reads:.0f} involuntary switches, {faults / reads:.0f} page faults"
        )


if __name__ == "__main__":
    main()
