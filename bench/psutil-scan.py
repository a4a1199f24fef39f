"""psutil-scan: the psutil peer of `pidgen bench`.

Usage: /usr/bin/python3 psutil-scan.py

Collects what `ps -eLo pid,tid,ppid,stat,comm,args` shows, the way a psutil
user would: process_iter() with pid, ppid, status, name and cmdline for each
process, then for each thread its state and name. psutil has no per-thread
name or state (Process.threads() gives ids and CPU times only), so each
thread other than the main one is opened as psutil.Process(tid), which
/proc resolves for thread ids too.

Prints one JSON line: {"walkNs": N, "processes": P, "tasks": T, "psutil": V,
"python": V}, where walkNs
is the scan alone (Python start and the psutil import are not in it).
Exits 3 with a message on stderr when psutil is not installed.
"""
import json
import platform
import sys
import time

try:
    import psutil
except ImportError:
    sys.stderr.write("psutil-scan: psutil is not installed for %s\n" % sys.executable)
    sys.exit(3)

FIELDS = ["pid", "ppid", "status", "name", "cmdline"]


def scan():
    rows = []
    processes = 0
    for process in psutil.process_iter(FIELDS):
        info = process.info
        try:
            threads = process.threads()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            threads = []
        processes += 1
        args = " ".join(info["cmdline"] or [])
        for thread in threads or [None]:
            tid = thread.id if thread else info["pid"]
            if tid == info["pid"]:
                rows.append((info["pid"], tid, info["ppid"], info["status"], info["name"], args))
                continue
            try:
                task = psutil.Process(tid)
                with task.oneshot():
                    rows.append((info["pid"], tid, info["ppid"], task.status(), task.name(), args))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
    return processes, rows


def main():
    start = time.perf_counter_ns()
    processes, rows = scan()
    walk_ns = time.perf_counter_ns() - start
    print(json.dumps({
        "walkNs": walk_ns,
        "processes": processes,
        "tasks": len(rows),
        "psutil": psutil.__version__,
        "python": platform.python_version(),
    }))


main()
