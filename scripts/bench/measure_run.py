#!/usr/bin/env python3
"""Runs a command and reports, for scripts/bench/annotations.sh: seconds until its output first matches --until
(e.g. the first training step's line), its CPU seconds, its peak resident memory (the kernel's maxrss: anonymous
memory plus the file pages it has mapped, page cache shared with other processes included), and its peak
anonymous resident memory (RssAnon of /proc/PID/status, sampled every 20 ms: what the process holds on its own,
beyond the shared page cache).

    scripts/bench/measure_run.py --until 'step 1/' --log run.log -- build/phantom train ...

Prints one line: `first_step_s=.. cpu_s=.. maxrss_mb=.. anon_peak_mb=.. rc=..`; exits 1 when the command failed or
never printed the --until line. A tool, not part of the framework.
"""
import argparse
import os
import re
import subprocess
import sys
import threading
import time


def rss_anon_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--until", required=True, help="regex of the output line that marks the first step")
    p.add_argument("--log", required=True)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    peak_anon = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak_anon[0] = max(peak_anon[0], rss_anon_kb(proc.pid))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    first = None
    until = re.compile(a.until)
    with open(a.log, "w") as log:
        for line in proc.stdout:
            log.write(line)
            if first is None and until.search(line):
                first = time.monotonic() - t0
    _, status, ru = os.wait4(proc.pid, 0)
    done.set()
    rc = os.waitstatus_to_exitcode(status)
    fs = f"{first:.1f}" if first is not None else "none"
    print(f"first_step_s={fs} cpu_s={ru.ru_utime + ru.ru_stime:.1f} maxrss_mb={ru.ru_maxrss / 1024:.0f} "
          f"anon_peak_mb={peak_anon[0] / 1024:.0f} wall_s={time.monotonic() - t0:.1f} rc={rc}")
    # A run that failed or never printed the --until line measured nothing: not a success.
    return 0 if rc == 0 and first is not None else 1


if __name__ == "__main__":
    sys.exit(main())
