"""The probe's own run time against a bare interpreter start.

    python -m bench.probe_start            # 15 runs of each, medians
    python -m bench.probe_start --runs 1   # the smoke configuration

Runs, on this machine, with the interpreter a lab pod's stock Python image runs (the host's Python with its
standard library only: no azure-identity, so no SDK cross-check, as in the default image), the probe's source on
PYTHONPATH as the ConfigMap puts it there:

- a bare start: ``python3 -c pass``;
- the probe's imports: ``python3 -c "import probe.cli"``;
- the probe itself: ``python3 -m probe`` with the environment the webhook injects (a ServiceAccount token
  made by the lab's API server for ``api://AzureADTokenExchange``) and the WI_PROBE_CONFIG the harness builds
  for finance/backend-sa: the token exchange with the lab's Entra and one Key Vault secret read.

The imports and the run are timed twice, side by side: from the source alone and from the source with the
bytecode the ConfigMap ships beside it (harness.collect.probe_source), both read-only and with
PYTHONDONTWRITEBYTECODE=1 as in a pod, so no run leaves bytecode for the next.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s

from bench.world import BenchLab, bench_lab, machine
from lab.kube.images import stdlib_python


@dataclass
class Timed:
    seconds: float
    cpu_seconds: float
    returncode: int
    stdout: bytes
    stderr: bytes


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> Timed:
    """Wall time and the process's own CPU time (wait4), its output read from files (no pipes to pump)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Timed(seconds, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status), out.read(),
                     err.read())


def _probe_env(lab: BenchLab, scratch: Path) -> dict[str, str]:
    from harness.collect.probe_pods import probe_config_for
    from harness.config import load_config

    config = load_config(lab.running.harness_config)
    workload = next(w for w in config.workloads if w.id == "finance/backend-sa")
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(
        audiences=["api://AzureADTokenExchange"], expiration_seconds=3600))
    token = lab._core.create_namespaced_service_account_token("backend-sa", "finance", request).status.token
    token_file = scratch / "azure-identity-token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    probe_config = probe_config_for(workload, config.probe, config.cloud)
    probe_config["ca_file"] = str(lab.state_dir / "ca.pem")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "AZURE_CLIENT_ID": workload.client_id or "",
        "AZURE_TENANT_ID": lab.info["tenant_id"],
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZURE_AUTHORITY_HOST": lab.info["authority_host"],
        "WI_PROBE_CONFIG": json.dumps(probe_config),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.probe_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    print(f"probe start bench on {machine()}; {args.runs} runs each, medians", flush=True)
    with bench_lab() as lab:
        return measure(lab, args)


def measure(lab: BenchLab, args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="wi-bench-") as scratch_name:
        scratch = Path(scratch_name)
        python = str(stdlib_python(scratch / "python") / "python3")  # what a lab pod's stock image runs
        env = _probe_env(lab, scratch)
        # the probe's files in a read-only directory as the ConfigMap mounts them at /opt/wi-probe: the source
        # alone, and the source with the shipped bytecode
        from harness.collect.probe_source import source_configmap

        config_map = source_configmap("bench", "bench", {})
        source, shipped = scratch / "source-only", scratch / "wi-probe"
        for root, binary in ((source, {}), (shipped, config_map.get("binaryData") or {})):
            (root / "probe" / "__pycache__").mkdir(parents=True)
            for name, text in config_map["data"].items():
                (root / "probe" / name).write_text(text)
            for name, data in binary.items():
                (root / "probe" / "__pycache__" / name).write_bytes(base64.b64decode(data))
            for directory in (root / "probe" / "__pycache__", root / "probe"):
                directory.chmod(0o555)
        nowrite = {"PATH": env["PATH"], "PYTHONDONTWRITEBYTECODE": "1"}
        cases = {
            "bare interpreter (python3 -c pass)": ([python, "-c", "pass"], nowrite, shipped),
            "probe imports, source only (import probe.cli)": (
                [python, "-c", "import probe.cli"], {**nowrite, "PYTHONPATH": str(source)}, source),
            "probe imports, source + bytecode (as shipped)": (
                [python, "-c", "import probe.cli"], {**nowrite, "PYTHONPATH": str(shipped)}, shipped),
            "probe run, source only": (
                [python, "-m", "probe"], {**env, **nowrite, "PYTHONPATH": str(source)}, source),
            "probe run (python3 -m probe: exchange + 1 Key Vault read)": (
                [python, "-m", "probe"], {**env, **nowrite, "PYTHONPATH": str(shipped)}, shipped),
        }
        times: dict[str, list[Timed]] = {name: [] for name in cases}
        try:
            for _ in range(args.runs):
                for name, (command, environment, cwd) in cases.items():
                    done = _timed(command, environment, cwd)
                    if done.returncode != 0:
                        print(f"  {name}: exit {done.returncode}: {done.stdout[-800:]!r} {done.stderr[-800:]!r}")
                        return 1
                    times[name].append(done)
        finally:  # writable again, for the scratch directory's removal
            for root in (source, shipped):
                for directory in (root / "probe", root / "probe" / "__pycache__"):
                    directory.chmod(0o755)
        bare = statistics.median(t.seconds for t in times[next(iter(cases))])
        bare_cpu = statistics.median(t.cpu_seconds for t in times[next(iter(cases))])
        print(f"\n  {'what':58} wall ms  / bare    CPU ms  / bare")
        for name, values in times.items():
            wall = statistics.median(t.seconds for t in values)
            cpu = statistics.median(t.cpu_seconds for t in values)
            print(f"  {name:58} {wall * 1000:7.1f} {wall / bare:7.2f}   {cpu * 1000:7.1f} {cpu / max(bare_cpu, 1e-3):6.2f}")
        result = json.loads(done.stdout)
        print(f"  ('probe run (python3 -m probe ...)' is as shipped: the source with its bytecode; "
              f"{len(config_map.get('binaryData') or {})} .pyc files)")
        print(f"\n  the probe's verdict: ok={result['ok']}, steps: "
              + ", ".join(f"{s['name']}={s['status']}" for s in result.get("steps", [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
