"""``python -m lab up|scenarios|ctl``: run the lab in the foreground, list scenarios, change a running lab."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import gc
import json
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import IO, Any, NoReturn

CTL_EXAMPLES = """\
examples:
  python -m lab ctl --state-dir DIR status
  python -m lab ctl --state-dir DIR webhook --mode down        (up | down | absent; --layout v1.5|v1.6|pr1749)
  python -m lab ctl --state-dir DIR webhook --install helm     (addon | helm | both: who installed the webhook)
  python -m lab ctl --state-dir DIR webhook --latency-ms 2000  (answers after 2 s: past a timeoutSeconds of 1 or 2)
  python -m lab ctl --state-dir DIR issuer --rotate-keys        (--unreachable on|off, --stale-jwks on|off)
  python -m lab ctl --state-dir DIR kubelet --pod-start-latency 5
  python -m lab ctl --state-dir DIR clock --skew 7200          (Entra's clock, seconds)
  python -m lab ctl --state-dir DIR fault arm --rate-429 0.5 --retry-after 2 --latency-ms 200
  python -m lab ctl --state-dir DIR fault kube --watch-expire 3 --watch-drop 2
  python -m lab ctl --state-dir DIR egress --block entra keyvault   (--unblock ...)
  python -m lab ctl --state-dir DIR propagation --fic-seconds 30 --role-seconds 30
  python -m lab ctl --state-dir DIR entra --metadata-cache-seconds 120   (how long Entra keeps an issuer's
                                                                 discovery document and JWKS; 0: no cache)
  python -m lab ctl --state-dir DIR policy deny --namespace NS --message TEXT   (Azure Policy / Gatekeeper refuses
                                                                 new pods in NS; --constraint NAME)
  python -m lab ctl --state-dir DIR policy allowed-repos --namespace NS --repo PREFIX   (images elsewhere refused)
  python -m lab ctl --state-dir DIR policy container-limits --namespace NS --cpu 500m --memory 512Mi
                                                                (containers without limits, or above them, refused)
  python -m lab ctl --state-dir DIR policy clear                (removes the Gatekeeper webhook and constraints)
  python -m lab ctl --state-dir DIR cluster --oidc-issuer off   (a cluster made before its OIDC issuer was enabled;
                                                                 ARM refuses to turn it off)
  python -m lab ctl --state-dir DIR cluster --network-policy none   (a cluster made without a NetworkPolicy engine:
                                                                 policies are stored, none enforced)
"""


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr (and exit code 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


_seconds.__name__ = "number"  # argparse names the type in its error: "invalid number value: 'inf'"


def _directory(text: str) -> Path:
    """--state-dir: "" would be Path("."), the lab's files written into wherever the command was typed."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a directory is required, not an empty string")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the lab in the foreground (Ctrl-C stops it)")
    up.add_argument("--state-dir", required=True, type=_directory,
                    help="where kubeconfig, ca.pem, lab.json, env.sh go")
    up.add_argument("--scenario", default="healthy", help="see `python -m lab scenarios` (default: healthy)")
    up.add_argument("--webhook-layout", choices=["v1.5", "v1.6", "pr1749"], default=None,
                    help="token path layout of the emulated webhook (default v1.5, the /tokens path AKS ships)")
    up.add_argument("-v", "--verbose", action="store_true", help="log every request")

    commands.add_parser("scenarios", help="list the scenarios")

    ctl = commands.add_parser("ctl", help="change a running lab", epilog=CTL_EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    ctl.add_argument("--state-dir", required=True, type=_directory)
    actions = ctl.add_subparsers(dest="action", required=True)
    actions.add_parser("status")
    webhook = actions.add_parser("webhook")
    webhook.add_argument("--mode", choices=["up", "down", "absent"])
    webhook.add_argument("--layout", choices=["v1.5", "v1.6", "pr1749"])
    webhook.add_argument("--install", choices=["addon", "helm", "both"],
                         help="the AKS add-on in kube-system, the Helm chart in azure-workload-identity-system, "
                              "or both at once")
    webhook.add_argument("--latency-ms", dest="webhook_latency_ms", type=int, metavar="MS",
                         help="how long the webhook takes to answer: a call that takes its configuration's "
                              "timeoutSeconds or longer fails (context deadline exceeded); 0: at once")
    issuer = actions.add_parser("issuer")
    issuer.add_argument("--rotate-keys", action="store_true")
    issuer.add_argument("--unreachable", choices=["on", "off"])
    issuer.add_argument("--stale-jwks", choices=["on", "off"],
                        help="on: the issuer keeps publishing today's JWKS whatever keys sign later (a self-managed "
                             "issuer not re-uploaded after a key change); off: it follows the API server again")
    kubelet = actions.add_parser("kubelet")
    kubelet.add_argument("--pod-start-latency", type=_seconds, required=True, metavar="SECONDS")
    clock = actions.add_parser("clock")
    clock.add_argument("--skew", type=_seconds, required=True, metavar="SECONDS")
    fault = actions.add_parser("fault")
    fault.add_argument("service", choices=["kube", "issuer", "entra", "arm", "graph", "keyvault", "storage"])
    fault.add_argument("--latency-ms", type=int)
    fault.add_argument("--rate-429", type=_seconds, metavar="FRACTION")
    fault.add_argument("--rate-503", type=_seconds, metavar="FRACTION")
    fault.add_argument("--retry-after", type=int)
    fault.add_argument("--seed", type=int, help="reseed the faults' random choices (all services share them)")
    fault.add_argument("--watch-expire", type=int, metavar="N",
                       help="kube only: the next N watches from a resourceVersion answer 410 Expired ('too old "
                            "resource version') as an ERROR event")
    fault.add_argument("--watch-drop", type=int, metavar="N",
                       help="kube only: the next N watch streams are cut after their initial events")
    outage = actions.add_parser("outage", help="a service hard down (connections refused) or back up")
    outage.add_argument("service", choices=["kube", "issuer", "entra", "arm", "graph", "keyvault", "storage"])
    up_or_down = outage.add_mutually_exclusive_group(required=True)
    up_or_down.add_argument("--down", dest="down", action="store_true", default=None)
    up_or_down.add_argument("--up", dest="down", action="store_false")
    egress = actions.add_parser("egress")
    egress.add_argument("--block", nargs="+", default=[])
    egress.add_argument("--unblock", nargs="+", default=[])
    propagation = actions.add_parser("propagation")
    propagation.add_argument("--fic-seconds", type=_seconds)
    propagation.add_argument("--role-seconds", type=_seconds)
    entra = actions.add_parser("entra", help="Entra's own behaviour: how long it caches issuers' OIDC metadata")
    entra.add_argument("--metadata-cache-seconds", type=_seconds, required=True, metavar="SECONDS",
                       help="keep an issuer's discovery document and JWKS this long (default 120; 0: off)")
    cluster = actions.add_parser("cluster", help="what the managed cluster was made with: its OIDC issuer off, no "
                                 "NetworkPolicy engine")
    cluster.add_argument("--oidc-issuer", choices=["on", "off"])
    cluster.add_argument("--network-policy", choices=["cilium", "none"],
                         help="none: NetworkPolicies are stored and not enforced (ARM networkPolicy none)")
    policy = actions.add_parser("policy", help="an Azure Policy / Gatekeeper admission webhook refusing pods")
    policy_actions = policy.add_subparsers(dest="policy_action", required=True)
    deny = policy_actions.add_parser("deny", help="refuse new pods in a namespace with a message")
    deny.add_argument("--namespace", required=True)
    deny.add_argument("--message", required=True)
    deny.add_argument("--constraint", help="the constraint's name (default: azurepolicy-k8slabdenypods-<hash>)")
    repos = policy_actions.add_parser("allowed-repos", help="refuse pods in a namespace whose images start with "
                                      "none of the given prefixes (gatekeeper-library's K8sAllowedRepos)")
    repos.add_argument("--namespace", required=True)
    repos.add_argument("--repo", action="append", required=True, dest="repos", metavar="PREFIX")
    repos.add_argument("--constraint", help="the constraint's name (default: allowed-repos-<namespace>)")
    limits = policy_actions.add_parser("container-limits", help="refuse pods in a namespace whose containers lack "
                                       "cpu/memory limits or exceed these (gatekeeper-library's K8sContainerLimits)")
    limits.add_argument("--namespace", required=True)
    limits.add_argument("--cpu", required=True, help="the highest cpu limit allowed (-1: cpu not checked)")
    limits.add_argument("--memory", required=True, help="the highest memory limit allowed")
    limits.add_argument("--constraint", help="the constraint's name (default: container-limits-<namespace>)")
    policy_actions.add_parser("clear", help="remove the webhook and its constraints")
    return parser


def _ctl_body(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {
        "webhook": {"mode": args.__dict__.get("mode"), "layout": args.__dict__.get("layout"),
                    "install": args.__dict__.get("install"), "latency_ms": args.__dict__.get("webhook_latency_ms")},
        "issuer": {"rotate_keys": args.__dict__.get("rotate_keys") or None,
                   "unreachable": {"on": True, "off": False}.get(args.__dict__.get("unreachable") or ""),
                   "stale_jwks": {"on": True, "off": False}.get(args.__dict__.get("stale_jwks") or "")},
        "kubelet": {"pod_start_latency_seconds": args.__dict__.get("pod_start_latency")},
        "clock": {"skew_seconds": args.__dict__.get("skew")},
        "fault": {"service": args.__dict__.get("service"), "latency_ms": args.__dict__.get("latency_ms"),
                  "rate_429": args.__dict__.get("rate_429"), "rate_503": args.__dict__.get("rate_503"),
                  "retry_after_seconds": args.__dict__.get("retry_after"), "seed": args.__dict__.get("seed"),
                  "watch_expire": args.__dict__.get("watch_expire"), "watch_drop": args.__dict__.get("watch_drop")},
        "egress": {"block": args.__dict__.get("block"), "unblock": args.__dict__.get("unblock")},
        "outage": {"service": args.__dict__.get("service"), "down": args.__dict__.get("down")},
        "propagation": {"fic_seconds": args.__dict__.get("fic_seconds"),
                        "role_seconds": args.__dict__.get("role_seconds")},
        "entra": {"metadata_cache_seconds": args.__dict__.get("metadata_cache_seconds")},
        "cluster": {"oidc_issuer": {"on": True, "off": False}.get(args.__dict__.get("oidc_issuer") or ""),
                    "network_policy": args.__dict__.get("network_policy")},
        "policy": {"action": args.__dict__.get("policy_action"), "namespace": args.__dict__.get("namespace"),
                   "message": args.__dict__.get("message"), "constraint": args.__dict__.get("constraint"),
                   "repos": args.__dict__.get("repos"), "cpu": args.__dict__.get("cpu"),
                   "memory": args.__dict__.get("memory")},
    }.get(args.action, {})
    return {key: value for key, value in pairs.items() if value is not None}


def ctl(args: argparse.Namespace) -> int:
    import requests

    state_file = args.state_dir / "lab.json"
    try:
        state = json.loads(state_file.read_text())
        url, token = state["control"]["url"], state["control"]["token"]
    except FileNotFoundError:
        print(f"error: {state_file} not found: is `python -m lab up --state-dir {args.state_dir}` running?",
              file=sys.stderr)
        return 2
    except OSError as exc:  # --state-dir names a file, or an unreadable directory
        print(f"error: cannot read {state_file}: {exc.strerror or exc}: is --state-dir the directory "
              "`python -m lab up` was given?", file=sys.stderr)
        return 2
    except (ValueError, KeyError, TypeError):
        print(f"error: {state_file} is not a lab's state file", file=sys.stderr)
        return 2
    try:
        response = requests.post(
            f"{url}/ctl/{args.action}", json=_ctl_body(args), timeout=30,
            headers={"Authorization": f"Bearer {token}"}, verify=str(args.state_dir / "ca.pem"),
        )
    except requests.RequestException as exc:
        print(f"error: the lab at {url} did not answer ({type(exc).__name__}); "
              "is it still running?", file=sys.stderr)
        return 2
    if response.status_code != 200:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = f"the lab answered {response.status_code} {response.reason}"
        print(f"error: {message}", file=sys.stderr)
        return 1
    print(json.dumps(response.json(), indent=2))
    return 0


def _claim_state_dir(state_dir: Path) -> IO[str] | str:
    """Lock DIR/lab.lock for this process's lifetime, or say why not. A second ``lab up`` on the same directory
    would rewrite lab.json, kubeconfig and ca.pem under the running lab, which then no one can reach."""
    if state_dir.exists() and not state_dir.is_dir():
        return f"--state-dir {state_dir} is a file, not a directory"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(state_dir / "lab.lock", "a+")  # noqa: SIM115 - held (and its lock) until the process ends
    except OSError as exc:
        return f"cannot use --state-dir {state_dir}: {exc.strerror or exc}"
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        return (f"a lab is already running with --state-dir {state_dir} (pid {holder}): stop it, or give this "
                "one another directory")
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


async def _run_up(args: argparse.Namespace) -> int:
    from lab.runtime import Lab

    lab = Lab(args.state_dir, scenario=args.scenario, webhook_layout=args.webhook_layout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await lab.start()
    except Exception:
        await lab.stop()
        raise
    # what the start made (schemas, routes, the scenario's objects) lives as long as the lab: out of the garbage
    # collector's reach, so that its full passes do not walk it again and again (gc.freeze's intended use)
    gc.freeze()
    print(f"lab up ({args.scenario}); state in {args.state_dir}", flush=True)
    print(f"  source {args.state_dir / 'env.sh'}   # then kubectl, az, the SDKs and the harness work", flush=True)
    for name, url in lab.endpoints.items():
        print(f"  {name:9} {url}", flush=True)
    print(f"  issuer    {lab.issuer_url}", flush=True)
    await stop.wait()
    print("stopping lab", flush=True)
    await lab.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "scenarios":
        from lab.scenarios import describe

        for scenario in describe():
            print(f"{scenario['name']:20} {scenario['description']}")
        return 0
    if args.command == "ctl":
        return ctl(args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from lab.scenarios import SCENARIOS

    if args.scenario not in SCENARIOS:
        print(f"error: --scenario: unknown scenario {args.scenario!r}; choose one of: {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    claimed = _claim_state_dir(args.state_dir)
    if isinstance(claimed, str):
        print(f"error: {claimed}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run_up(args))
    except OSError as exc:
        print(f"error: could not start the lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the lab's own handler was installed
        return 130


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `lab ctl status | head`: the reader left; end quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
