"""Inventory: T(the inventory of 50 identities) / T(one ARM round trip), at 300 ms ARM latency.

    python -m bench.inventory                          # 50 identities, 300 ms, 3 runs (about 2 minutes)
    python -m bench.inventory --identities 2 --latency-ms 20 --runs 1   # the smoke configuration

One lab gets ``--identities`` workloads (a managed identity each, with a federated credential and a role
assignment, its ServiceAccount annotated), then ``lab ctl fault arm --latency-ms`` slows every ARM answer (Resource
Graph included). Timed in this process, with the harness's own clients and a warm token:

- one ARM round trip: GET of the subscription (median of 5);
- the inventory: :func:`harness.collect.inventory.collect_inventory` as the inventory suite calls it, with a
  fresh per-run cache each time (every identity, credential list and role assignment list read again).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.world import BenchLab, bench_lab, machine


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.inventory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3, help="inventory runs; the median is kept")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from harness.collect.cache import WORKERS

    args = parse(argv)
    print(f"inventory bench on {machine()}; {args.identities} identities, ARM latency {args.latency_ms} ms, "
          f"{WORKERS} ARM reads at a time", flush=True)
    with bench_lab() as lab:
        return measure(lab, args)


def measure(lab: BenchLab, args: argparse.Namespace) -> int:
    """The inventory of ``lab`` once it holds ``--identities`` bench workloads; ARM's latency set back after."""
    from harness.collect.arm_api import RequestsArm, graph_client
    from harness.collect.cache import RunCache
    from harness.collect.inventory import collect_inventory
    from harness.collect.kube_api import OfficialKubeApi
    from harness.config import load_config

    lab.add_workloads(args.identities)
    try:
        config = load_config(lab.running.harness_config)
        assert config.azure is not None
        kube = OfficialKubeApi(config.cluster.kubeconfig, config.cluster.context)
        arm = RequestsArm(config.azure)
        graph = graph_client(config.azure, arm)
        subscription = f"/subscriptions/{config.azure.subscription_id}?api-version=2022-12-01"
        arm(subscription)  # the token, the TLS session: warm before anything is timed
        if graph is not None:
            graph("/v1.0/applications?$top=1")
        lab.ctl("fault", {"service": "arm", "latency_ms": args.latency_ms})
        trips = []
        for _ in range(5):
            started = time.perf_counter()
            answer = arm(subscription)
            trips.append(time.perf_counter() - started)
            assert answer.ok, answer.describe()
        trip = statistics.median(trips)
        runs, sent, found = [], 0, 0
        wanted = {f"{w.namespace}-id" for w in lab.workloads[:args.identities]}
        for _ in range(args.runs):
            cached_arm, cached_graph = RunCache(arm), RunCache(graph) if graph is not None else None
            started = time.perf_counter()
            facts = collect_inventory(kube, cached_arm, config.azure, cached_graph, lab.info["issuer_url"])
            runs.append(time.perf_counter() - started)
            sent = cached_arm.sent + (cached_graph.sent if cached_graph is not None else 0)
            found = sum(1 for i in facts.identities if i.name in wanted and i.role_assignments)
            if facts.failed:
                print("  the inventory recorded failures:", *[f.describe() for f in facts.failed[:5]], sep="\n    ")
                return 1
        inventory = statistics.median(runs)
        print(f"\n  one ARM round trip (median of 5)     {trip * 1000:8.0f} ms")
        print(f"  inventory (median of {args.runs})              {inventory * 1000:8.0f} ms   "
              f"({sent} ARM/Graph reads; {found} bench identities with their role assignments)")
        print(f"  T(inventory) / T(round trip)        {inventory / trip:8.2f}")
        if found != args.identities:
            print(f"  expected {args.identities} bench identities with role assignments, found {found}")
            return 1
    finally:
        lab.ctl("fault", {"service": "arm", "latency_ms": 0})
    return 0


if __name__ == "__main__":
    sys.exit(main())
