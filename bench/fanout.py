"""Fan-out: T(N)/T(1) of ``pytest suites/test_workloads.py`` against one lab at a 2 s pod start.

    python -m bench.fanout                      # N = 1, 10, 50, 200 (several minutes; 200 dominates)
    python -m bench.fanout --counts 1 10 50     # a shorter run
    python -m bench.fanout --counts 1 --pod-start 0   # the smoke configuration

One lab (``python -m lab up`` on loopback) gets max(N) workloads up front; each run lists the first N in its
harness.yaml and verifies them (probe pods, token exchange, one Key Vault read each). An untimed N=1 run goes
first (the lab's and pytest's one-time work). T(N) is the wall time of the whole ``pytest`` process as a person
runs it; its CPU time and peak RSS (wait4) are printed beside it, and the CPU the lab process and its pods (the
probe processes, their sandbox launchers and network relays) spent during the run, from /proc.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench import profiling
from bench.world import BenchLab, Measured, bench_lab, failures, machine, process_cpu, run_suites, verdicts

SUITES = ("suites/test_workloads.py",)


def _profiled(lab: BenchLab, config: Path, report_dir: Path, directory: Path, count: int) -> Measured:
    if not profiling.available():
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    directory.mkdir(parents=True, exist_ok=True)
    lab_profile, harness_profile = directory / f"lab-{count}.txt", directory / f"harness-{count}.txt"
    attached = profiling.Attached(lab.info["pid"], lab_profile)
    try:
        measured = run_suites(config, report_dir, suites=SUITES, wrap=lambda c: profiling.wrap(c, harness_profile))
    finally:
        attached.stop()
    for raw in (lab_profile, harness_profile):
        if raw.exists():
            print(profiling.summary(raw), flush=True)
    return measured


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 10, 50, 200], metavar="N")
    parser.add_argument("--pod-start", type=float, default=2.0, metavar="SECONDS",
                        help="the lab's pod start latency (lab ctl kubelet --pod-start-latency)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per N; the fastest is kept")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record py-spy profiles of the lab (with its pods) and the harness for each N into "
                             "DIR and print their summaries (times are then not comparable)")
    args = parser.parse_args(argv)
    if min(args.counts) < 1:
        parser.error("--counts: each N must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    counts = sorted(set(args.counts) | {1})
    print(f"fan-out bench on {machine()}; pod start {args.pod_start:g} s; N = {', '.join(map(str, counts))}",
          flush=True)
    with bench_lab() as lab:
        return measure(lab, args)


def measure(lab: BenchLab, args: argparse.Namespace) -> int:
    """The runs against ``lab`` (made to hold max(N) bench workloads)."""
    counts = sorted(set(args.counts) | {1})
    lab.add_workloads(max(counts))
    failed = False
    with tempfile.TemporaryDirectory(prefix="wi-bench-") as scratch:
        lab.ctl("kubelet", {"pod_start_latency_seconds": args.pod_start})
        # Untimed: the first run against a fresh lab also pays what is done once per lab and per checkout (the
        # lab's lazy imports on its first pod create, pytest's rewrite of the suites' asserts into its cache).
        run_suites(lab.harness_config(Path(scratch), 1), Path(scratch) / "reports-warm-up", suites=SUITES)
        rows = []
        for count in counts:
            config = lab.harness_config(Path(scratch), count)
            best, lab_cpu = None, (0.0, 0.0)
            for attempt in range(args.repeat):
                before = process_cpu(lab.info["pid"])
                report_dir = Path(scratch) / f"reports-{count}-{attempt}"
                if args.profile:
                    measured = _profiled(lab, config, report_dir, args.profile, count)
                else:
                    measured = run_suites(config, report_dir, suites=SUITES)
                after = process_cpu(lab.info["pid"])
                if best is None or measured.seconds < best.seconds:
                    best, lab_cpu = measured, (after[0] - before[0], after[1] - before[1])
            assert best is not None
            ok = best.document is not None and all(w["verdict"] == "pass" for w in best.document["workloads"])
            ok = ok and len(best.document["workloads"]) == count  # type: ignore[index]
            failed |= not ok
            load = os.getloadavg()[0]  # the machine is shared: how busy it was, beside each time
            rows.append((count, best, lab_cpu, load))
            print(f"  N={count:<4} T={best.seconds:6.1f} s  harness CPU {best.cpu_seconds:5.1f} s  "
                  f"lab CPU {lab_cpu[0]:5.1f} s  pods' CPU {lab_cpu[1]:5.1f} s  "
                  f"harness peak RSS {best.peak_rss_mb:6.1f} MB  load {load:4.1f}  ({verdicts(best.document)})",
                  flush=True)
            if not ok:
                print("    run did not pass:", *failures(best.document), sep="\n      ", flush=True)
                if best.document is None:
                    print(best.output[-3000:])
        base = rows[0][1].seconds
        # All CPU of a run (harness, lab, pods) over 2 cores is the least time it can take on this machine alone
        print("\n  N     T(N) s   T(N)/T(1)   harness CPU s   lab CPU s   pods' CPU s   all CPU / cores s   "
              "harness peak RSS MB   load")
        for count, measured, (lab_own, pods), load in rows:
            floor = (measured.cpu_seconds + lab_own + pods) / (os.cpu_count() or 1)
            print(f"  {count:<5} {measured.seconds:7.1f}   {measured.seconds / base:8.2f}   "
                  f"{measured.cpu_seconds:12.1f}   {lab_own:8.1f}   {pods:10.1f}   {floor:16.1f}   "
                  f"{measured.peak_rss_mb:18.1f}   {load:4.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
