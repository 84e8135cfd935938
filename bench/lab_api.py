"""The lab's API throughput: requests per second and p50/p99 latency of the calls a run makes most.

    python -m bench.lab_api                         # 16 clients, 5 s per call
    python -m bench.lab_api --clients 2 --seconds 0.3   # the smoke configuration

Each call is driven by ``--clients`` concurrent aiohttp clients (keep-alive, as the harness's and the SDKs'
sessions are) for ``--seconds``, one call at a time, against one lab (``python -m lab up`` on loopback). The
client shares the 2 cores with the lab, so the numbers are a lower bound of what the lab alone serves.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import time
from dataclasses import dataclass

import aiohttp
import yaml
from kubernetes import client as k8s

from bench.world import BenchLab, bench_lab, machine

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
VAULT_SCOPE = "https://vault.azure.net/.default"


@dataclass
class Call:
    name: str
    method: str
    url: str
    headers: dict[str, str]
    data: dict[str, str] | None = None
    expect: int = 200


def _calls(lab: BenchLab) -> list[Call]:
    import requests

    info, ca = lab.info, lab.ca
    kubeconfig = yaml.safe_load((lab.state_dir / "kubeconfig").read_text())
    kube_token = kubeconfig["users"][0]["user"]["token"]
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(
        audiences=[EXCHANGE_AUDIENCE], expiration_seconds=3600))
    sa_token = lab._core.create_namespaced_service_account_token("backend-sa", "finance", request).status.token
    backend = next(w for w in yaml.safe_load(lab.running.harness_config.read_text())["workloads"]
                   if w["service_account"] == "backend-sa")
    token_url = f"{info['authority_host']}{info['tenant_id']}/oauth2/v2.0/token"
    exchange = {"client_id": backend["client_id"], "scope": VAULT_SCOPE, "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": sa_token}
    answer = requests.post(token_url, data=exchange, timeout=30, verify=ca)
    answer.raise_for_status()
    vault_token = answer.json()["access_token"]
    arm_token = lab._credential.get_token("https://management.azure.com/.default").token
    identity = (f"/subscriptions/{info['subscription_id']}/resourceGroups/myRg/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/myWorkloadId?api-version=2023-01-31")
    return [
        Call("kube   GET serviceaccount", "GET",
             f"{info['endpoints']['kube']}/api/v1/namespaces/finance/serviceaccounts/backend-sa",
             {"Authorization": f"Bearer {kube_token}"}),
        Call("kube   GET pods (list)", "GET", f"{info['endpoints']['kube']}/api/v1/namespaces/finance/pods",
             {"Authorization": f"Bearer {kube_token}"}),
        Call("issuer GET openid-configuration", "GET", f"{info['issuer_url']}.well-known/openid-configuration", {}),
        Call("entra  POST token (federated exchange)", "POST", token_url, {}, exchange),
        Call("arm    GET managed identity", "GET", info["endpoints"]["arm"] + identity,
             {"Authorization": f"Bearer {arm_token}"}),
        Call("kv     GET secret", "GET", f"{info['vaults']['finance-kv']}secrets/db-password?api-version=7.4",
             {"Authorization": f"Bearer {vault_token}"}),
    ]


async def _drive(call: Call, clients: int, seconds: float, context: ssl.SSLContext) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(ssl=context, limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        stop = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                started = time.perf_counter()
                async with session.request(call.method, call.url, headers=call.headers, data=call.data) as answer:
                    await answer.read()
                    if answer.status != call.expect:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return int(len(latencies) / elapsed), latencies, errors


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1] if len(values) > 1 else values[0]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.lab_api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    print(f"lab API bench on {machine()}; {args.clients} clients, {args.seconds:g} s per call", flush=True)
    with bench_lab() as lab:
        return measure(lab, args)


def measure(lab: BenchLab, args: argparse.Namespace) -> int:
    failed = False
    context = ssl.create_default_context(cafile=lab.ca)
    calls = _calls(lab)
    print("\n  call                                        req/s    p50 ms    p99 ms   errors")
    for call in calls:
        rate, latencies, errors = asyncio.run(_drive(call, args.clients, args.seconds, context))
        failed |= errors > 0
        print(f"  {call.name:42} {rate:6d}   {_quantile(latencies, 0.5) * 1000:7.1f}   "
              f"{_quantile(latencies, 0.99) * 1000:7.1f}   {errors:6d}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
