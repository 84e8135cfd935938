"""What the checks say about the probe's launch (probe.mode configmap, the default, and image), on fake
worlds: what the admitted pod runs, a stock image the nodes cannot pull, a refused source ConfigMap, a CA
ConfigMap that is not there, an untrusted certificate on the way to Entra, and the probe.* knobs on the
objects the harness creates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fakeworld import World

from harness.analysis import RunResults
from harness.checks.model import FAIL, PASS
from harness.collect.probe_source import source_configmap_name
from harness.config import STOCK_PYTHON_IMAGE, HarnessConfig

RunWorld = Callable[..., tuple[RunResults, HarnessConfig]]


def finding_of(results: RunResults, check: str) -> Any:
    (finding,) = results.workloads["finance/backend-sa"].check(check).findings
    return finding


def test_the_admitted_probe_runs_python3_from_the_run_s_configmap_in_the_stock_image(
    run_world: RunWorld,
) -> None:
    results, _ = run_world(World.healthy())
    admitted = results.workloads["finance/backend-sa"].check("pod.admitted")
    assert admitted.status == PASS
    assert admitted.evidence["image"] == STOCK_PYTHON_IMAGE
    assert admitted.evidence["command"] == ["python3", "-m", "probe"]
    assert admitted.evidence["probe_mode"] == "configmap"
    assert admitted.evidence["source_configmap"] == source_configmap_name("run-1")


def test_image_mode_says_the_image_runs_its_own_entrypoint(run_world: RunWorld) -> None:
    world = World.healthy(probe_settings={"mode": "image", "image": "example.azurecr.io/wi-probe:0.1.0"})
    results, _ = run_world(world)
    admitted = results.workloads["finance/backend-sa"].check("pod.admitted")
    assert admitted.status == PASS and admitted.evidence["probe_mode"] == "image"
    assert admitted.evidence["command"] is None
    assert admitted.evidence["image"] == "example.azurecr.io/wi-probe:0.1.0"


def test_a_stock_image_the_nodes_cannot_pull_is_mirrored_not_built(run_world: RunWorld) -> None:
    results, _ = run_world(World.healthy(probe_image_pullable=False))
    finding = finding_of(results, "probe.completed")
    assert finding.code == "PROBE_IMAGE_PULL_FAILED"
    lines = finding.fix_lines()
    assert any(line.startswith("az acr import --name '<registry>' --source") and STOCK_PYTHON_IMAGE in line
               for line in lines), lines
    assert not any(line.startswith("docker build") for line in lines)


def test_an_own_image_the_nodes_cannot_pull_is_built_and_pushed(run_world: RunWorld) -> None:
    world = World.healthy(
        probe_image_pullable=False, probe_settings={"mode": "image", "image": "example.azurecr.io/wi-probe:1"}
    )
    results, _ = run_world(world)
    lines = finding_of(results, "probe.completed").fix_lines()
    assert "docker build -t example.azurecr.io/wi-probe:1 ." in lines
    assert not any(line.startswith("az acr import") for line in lines)


def test_a_refused_source_configmap_names_configmaps_not_pods(run_world: RunWorld) -> None:
    results, _ = run_world(World.healthy(configmaps_forbidden=True))
    admitted = results.workloads["finance/backend-sa"].check("pod.admitted")
    assert admitted.status == FAIL and "source ConfigMap" in admitted.message
    finding = admitted.findings[0]
    assert finding.code == "PROBE_FORBIDDEN"
    lines = finding.fix_lines()  # the Role that lets the harness make the ConfigMap there, then the check
    assert "kubectl create role wi-harness-probe-source -n finance --verb=create,list,delete --resource=configmaps" \
        in lines
    assert any("kubectl auth can-i create configmaps -n finance" in line and line.startswith("#") for line in lines)
    # a whole-cluster Job (no workloads in harness.yaml) is granted its namespaces by manifests render --namespace
    assert any("among the workloads (or --namespace finance)" in line for line in lines)
    assert results.workloads["finance/backend-sa"].check("probe.completed").status != PASS


def test_a_missing_ca_configmap_is_named_by_the_probe_not_a_timeout(run_world: RunWorld) -> None:
    """The fake kubelet mounts an optional ConfigMap that does not exist as an empty directory: the probe
    finds no CA file and says so in its report."""
    results, _ = run_world(World.healthy(probe_settings={"ca_configmap": "proxy-ca"}))
    finding = finding_of(results, "probe.completed")
    assert finding.code == "PROBE_CONFIG_INVALID"
    assert finding.evidence["error"]["field"] == "ca_file"
    assert finding.evidence["ca_configmap"] == "proxy-ca"
    assert "kubectl describe configmap proxy-ca -n finance" in " ".join(finding.fix_lines())


def test_probe_knobs_reach_the_pod_and_the_configmap(run_world: RunWorld, tmp_path: Any) -> None:
    world = World.healthy(probe_settings={
        "labels": {"cost-center": "platform"},
        "annotations": {"example.com/owner": "platform"},
        "node_selector": {"agentpool": "apps"},
        "tolerations": [{"key": "sku", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}],
        "resources": {"limits": {"cpu": "500m"}},
    })
    config_path = tmp_path
    from harness.collect.run import Selection, collect_run
    from harness.config import parse_config

    config = parse_config(world.config(config_path), base_dir=config_path)
    backend = world.backend()
    selection = Selection(workloads=config.workloads)
    collect_run(backend, config, selection, "run-1", config.probe.resolved_image, keep=True)
    kube = backend.kube
    pod = kube.created[0]  # type: ignore[attr-defined]
    assert pod["metadata"]["labels"]["cost-center"] == "platform"
    assert pod["metadata"]["annotations"]["example.com/owner"] == "platform"
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux", "agentpool": "apps"}
    assert pod["spec"]["tolerations"][0]["value"] == "spot"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}
    config_maps = list(kube.config_maps.values())  # type: ignore[attr-defined]
    assert {c["metadata"]["labels"]["cost-center"] for c in config_maps} == {"platform"}
    assert {c["metadata"]["namespace"] for c in config_maps} == {"finance", "orders"}


def test_an_untrusted_certificate_on_the_way_to_entra_points_at_probe_ca_configmap(
    run_world: RunWorld,
) -> None:
    """It answered, with a certificate the pod could not verify: EGRESS_BLOCKED said 'the pod cannot reach Entra'
    and printed NetworkPolicy egress rules, which cannot cause a certificate error. Now the message says what
    happened and the fix is the proxy's CA for the probe (after a curl from a pod that shows the same error)."""
    results, _ = run_world(World.healthy(entra_certificate_untrusted=True))
    finding = finding_of(results, "exchange.succeeds")
    assert finding.code == "EGRESS_BLOCKED" and "tls_verify" in finding.message
    assert "cannot reach" not in finding.message and (
        "answered the pod with a TLS certificate the probe could not verify (a proxy re-signing TLS on the way, or a "
        "CA the pod's bundle lacks): tls_verify: ") in finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith("kubectl run -n finance egress-test --rm -it --image=curlimages/curl ")
    assert " -- curl " in lines[0] and '"allowPrivilegeEscalation":false' in lines[0]  # Pod Security restricted
    assert lines[1].startswith("kubectl create configmap proxy-ca -n finance --from-file=ca.crt=proxy-ca.pem")
    assert any("probe.ca_configmap: proxy-ca" in line for line in lines)
    assert not any("networkpolic" in line.lower() for line in lines), lines


def test_an_untrusted_certificate_with_a_ca_configmap_mounted_says_the_bundle_is_the_wrong_one() -> None:
    from test_checks import context_for

    from harness.checks.exchange import proxy_ca_steps
    from harness.commands import render

    volume = {"name": "wi-probe-ca", "configMap": {"name": "corp-ca", "optional": True}}
    lines = [render(step) for step in proxy_ca_steps(context_for({"spec": {"volumes": [volume]}}))]
    assert lines == ["# probe.ca_configmap corp-ca does not hold the CA that signed the certificate the pod "
                     "was shown: put the proxy's CA bundle (PEM) under its key"]
    without = [render(step) for step in proxy_ca_steps(context_for({"spec": {}}))]
    assert any("kubectl create configmap" in line for line in without)


# containerd's words through the kubelet, as AKS users report them for an ACR the kubelet identity may not pull from
_ACR_401 = ('rpc error: code = Unknown desc = failed to pull and unpack image "{0}": failed to resolve reference '
            '"{0}": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to '
            'https://mirrorreg.azurecr.io/oauth2/token?scope=repository%3Awi-harness%2Fpython%3Apull&service='
            'mirrorreg.azurecr.io: 401 Unauthorized')
_NOT_FOUND = ('rpc error: code = NotFound desc = failed to pull and unpack image "{0}": failed to resolve reference '
              '"{0}": {0}: not found')
MIRROR = "mirrorreg.azurecr.io/wi-harness/python:3"


def test_a_mirror_in_an_acr_without_the_image_gets_the_stock_image_imported_under_its_name(
    run_world: RunWorld,
) -> None:
    world = World.healthy(probe_image_pullable=False, probe_pull_error=_NOT_FOUND.format(MIRROR),
                          probe_settings={"image": MIRROR})
    results, _ = run_world(world)
    finding = finding_of(results, "probe.completed")
    assert finding.code == "PROBE_IMAGE_PULL_FAILED" and "not found" in finding.message
    lines = finding.fix_lines()
    assert lines[0].startswith(f"az acr import --name mirrorreg --source {STOCK_PYTHON_IMAGE} --image "
                               "wi-harness/python:3"), lines
    assert not any("<registry>" in line for line in lines), lines
    pinned = "mirrorreg.azurecr.io/wi-harness/python@sha256:" + "0" * 64
    world = World.healthy(probe_image_pullable=False, probe_pull_error=_NOT_FOUND.format(pinned),
                          probe_settings={"image": pinned})
    lines = finding_of(run_world(world)[0], "probe.completed").fix_lines()
    assert lines[0].startswith(f"az acr import --name mirrorreg --source {STOCK_PYTHON_IMAGE} --image "
                               "wi-harness/python:3"), lines
    assert lines[1].startswith("# then set probe.image: mirrorreg.azurecr.io/wi-harness/python:3 in harness.yaml")


def test_a_mirror_in_an_acr_the_nodes_may_not_pull_from_is_attached_to_the_cluster(run_world: RunWorld) -> None:
    world = World.healthy(probe_image_pullable=False, probe_pull_error=_ACR_401.format(MIRROR),
                          probe_settings={"image": MIRROR})
    results, config = run_world(world)
    lines = finding_of(results, "probe.completed").fix_lines()
    azure = config.azure
    where = (f"--resource-group {azure.resource_group} --name {azure.cluster_name} "
             f"--subscription {azure.subscription_id}")
    assert lines[0].startswith(f"az aks check-acr {where} --acr mirrorreg.azurecr.io"), lines
    assert lines[1].startswith(f"az aks update {where} --attach-acr mirrorreg"), lines
    assert not any(line.startswith("az acr import") for line in lines), lines


def test_a_private_registry_that_refuses_the_nodes_asks_for_probe_image_pull_secrets(run_world: RunWorld) -> None:
    """Not an ACR (no kubelet identity to attach): a docker-registry Secret named in probe.image_pull_secrets;
    with one named already, the Secret's credential is what the registry refused."""
    private = "harbor.corp.example/mirror/python:3.12"
    refused = (f'rpc error: code = Unknown desc = failed to pull and unpack image "{private}": failed to resolve '
               f'reference "{private}": pull access denied, repository does not exist or may require authorization: '
               "server message: insufficient_scope: authorization failed")
    world = World.healthy(probe_image_pullable=False, probe_pull_error=refused, probe_settings={"image": private})
    lines = finding_of(run_world(world)[0], "probe.completed").fix_lines()
    assert lines[0].startswith(f"# the registry refused the nodes' pull of {private}: make a docker-registry Secret")
    assert "probe.image_pull_secrets" in lines[0] and not any(line.startswith("az acr import") for line in lines)
    world = World.healthy(probe_image_pullable=False, probe_pull_error=refused,
                          probe_settings={"image": private, "image_pull_secrets": ["harbor-pull"]})
    lines = finding_of(run_world(world)[0], "probe.completed").fix_lines()
    assert lines[0] == "kubectl get secret -n finance harbor-pull   # the probe pod's imagePullSecrets"
    assert lines[1].startswith(f"# the registry refused the pull of {private} with harbor-pull: create the Secret in "
                               "namespace finance if the look above answers NotFound")


def test_a_probe_image_its_registry_does_not_have_is_corrected_not_imported_from_there(run_world: RunWorld) -> None:
    """Not an ACR, and the registry answered NotFound: importing the image from that registry cannot work."""
    missing = "ghcr.io/myorg/python:3.12"
    world = World.healthy(probe_image_pullable=False, probe_pull_error=_NOT_FOUND.format(missing),
                          probe_settings={"image": missing})
    lines = finding_of(run_world(world)[0], "probe.completed").fix_lines()
    assert lines[0].startswith(f"# {missing} is not in its registry: set probe.image in harness.yaml"), lines
    assert not any(line.startswith("az acr import") for line in lines), lines
