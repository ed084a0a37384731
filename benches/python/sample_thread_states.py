"""Sample, without stopping them, what a process's threads are doing: in a loop, read each
thread's state, kernel wait channel and current system call from /proc (and, for threads asleep
other than in a futex wait, and every 50th round, their kernel stacks: root only). Prints the
shares of the samples, the futex words slept on (one word shared by many threads: a contended
lock; a word per thread: idle workers) and the kernel stacks seen. Written for the 16-core
question in the README ("On 16 cores"), where gdb, which stops the threads one after another,
showed the decode threads mostly idle. NAME_PREFIX: the threads whose names start with it, or
`main` for the process's first thread.
Usage: python benches/python/sample_thread_states.py PID SECONDS NAME_PREFIX
"""

import collections
import os
import sys
import time
# x86-64 system call numbers of the calls zuring's threads make.
SYSCALLS = {
    0: "read", 1: "write", 3: "close", 9: "mmap", 10: "mprotect", 11: "munmap", 17: "pread64",
    24: "sched_yield", 28: "madvise", 202: "futex", 257: "openat", 262: "newfstatat",
    295: "preadv", 327: "preadv2", 332: "statx", 426: "io_uring_enter", 437: "openat2",
}


def threads(pid: int, prefix: str) -> list[str]:
    """The ids of `pid`'s threads named `prefix`..., or its first thread for `main`."""
    if prefix == "main":
        return [str(pid)]
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            if open(f"/proc/{pid}/task/{tid}/comm").read().startswith(prefix):
                found.append(tid)
        except OSError:  # the thread ended meanwhile
            pass
    return found


def call_name(field: str) -> str:
    """The system call /proc/TID/syscall names (`running` when in user space)."""
    if field.lstrip("-").isdigit():
        return SYSCALLS.get(int(field), field)
    return field


def main() -> None:
    pid, seconds, prefix = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    tids = threads(pid, prefix)
    counts: collections.Counter = collections.Counter()
    futexes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    stacks: collections.Counter = collections.Counter()
    rounds = 0
    end = time.time() + seconds
    while time.time() < end:
        for tid in tids:
            base = f"/proc/{pid}/task/{tid}"
            try:
                state = open(f"{base}/stat").read().rsplit(")", 1)[1].split()[0]
                wchan = open(f"{base}/wchan").read().strip() or "-"
                fields = open(f"{base}/syscall").read().split()
            except OSError:
                continue
            call = call_name(fields[0])
            counts[(state, wchan, call)] += 1
            if call == "futex" and state == "S":
                futexes[fields[1]][tid] += 1
            if state == "D" or (state == "S" and call != "futex") or (rounds % 50 == 0 and state != "R"):
                try:
                    lines = open(f"{base}/stack").read().split("\n")
                except OSError:
                    continue
                stacks[" < ".join(line.split(" ", 1)[-1].split("+")[0] for line in lines[:8] if line)] += 1
        rounds += 1
    total = max(sum(counts.values()), 1)
    print(f"{rounds} rounds over {len(tids)} threads named {prefix}*")
    for (state, wchan, call), c in counts.most_common(25):
        print(f"  {100 * c / total:5.1f}%  state {state}  wchan {wchan:28s} syscall {call}")
    print("kernel stacks of threads asleep (sampled):")
    for stack, c in stacks.most_common(15):
        print(f"  {c:5d}  {stack}")
    print("futex words slept on (samples, threads):")
    for word, by in sorted(futexes.items(), key=lambda kv: -sum(kv[1].values()))[:12]:
        print(f"  {word}: {100 * sum(by.values()) / total:5.1f}% of samples, by {len(by)} threads")


if __name__ == "__main__":
    main()
