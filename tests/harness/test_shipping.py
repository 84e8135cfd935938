"""``python -m harness manifests render`` and ``wi-harness`` without a cluster: what is rendered for the example
config (and that it validates with kubernetes-validate --strict), the Job's in-cluster harness.yaml, the bad
inputs (one line, exit 2), and how wi-harness maps pytest's test arguments into the installed suites."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.collect.probe_pods import sweep
from harness.console import SUITES_DIR, suite_arguments
from harness.manifests import MANIFESTS_DIR
from harness.shipping import load_for_render, render_bundle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "harness.example.yaml"
CLIENT_ID = "22222222-2222-2222-2222-222222222222"


def render_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "manifests", "render", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("example")
    done = render_cli("--config", str(EXAMPLE), "--out", str(out))  # its client_secret_env is not set: not needed
    assert done.returncode == 0, done.stderr
    return out


def test_the_example_renders_the_job_its_rbac_and_a_probe_pod_per_workload(example: Path) -> None:
    files = sorted(str(p.relative_to(example)) for p in example.rglob("*.yaml"))
    assert files == ["00-namespace.yaml", "01-rbac.yaml", "02-job.yaml", "probes/finance.backend-sa.yaml",
                     "probes/orders.orders-sa.yaml"]
    (namespace,) = documents(example / "00-namespace.yaml")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    account, config_map, job = documents(example / "02-job.yaml")
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == CLIENT_ID
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"] == "wi-harness"
    assert pod["spec"]["containers"][0]["image"] == "myregistry.azurecr.io/wi-harness:0.1.0"
    in_cluster = yaml.safe_load(config_map["data"]["harness.yaml"])
    assert "credential" not in in_cluster["azure"] and "kubeconfig" not in in_cluster.get("cluster", {})
    assert [w["service_account"] for w in in_cluster["workloads"]] == ["backend-sa", "orders-sa"]
    rbac = documents(example / "01-rbac.yaml")
    bound = {(d["kind"], d["metadata"].get("namespace")) for d in rbac if d["kind"].endswith("Binding")}
    assert bound == {("ClusterRoleBinding", None), ("RoleBinding", "kube-system"), ("RoleBinding", "finance"),
                     ("RoleBinding", "orders")}
    assert all(d["subjects"] == [{"kind": "ServiceAccount", "name": "wi-harness", "namespace": "wi-harness"}]
               for d in rbac if d["kind"].endswith("Binding"))
    source, probe = documents(example / "probes" / "finance.backend-sa.yaml")
    assert (source["kind"], probe["kind"]) == ("ConfigMap", "Pod")
    assert probe["metadata"]["name"] == "wi-probe-backend-sa" and probe["spec"]["serviceAccountName"] == "backend-sa"
    assert probe["metadata"]["labels"]["azure.workload.identity/use"] == "true"


def test_the_rendered_example_validates_strictly(example: Path) -> None:
    validate = shutil.which("kubernetes-validate")
    if validate is None:
        pytest.fail("kubernetes-validate is not installed (pip install -e '.[dev]')")
    files = [str(p) for p in sorted(example.rglob("*.yaml"))]
    done = subprocess.run([validate, "--strict", "--quiet", *files], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_ca_bundle_rides_in_the_job_s_configmap(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(_self_signed_pem())
    data = yaml.safe_load(EXAMPLE.read_text())
    data["azure"]["ca_file"] = "ca.pem"
    (tmp_path / "harness.yaml").write_text(yaml.safe_dump(data))
    config, raw = load_for_render(tmp_path / "harness.yaml")
    render_bundle(config, raw, tmp_path / "out")
    _, config_map, job = documents(tmp_path / "out" / "02-job.yaml")
    assert config_map["data"]["azure-ca.crt"] == ca.read_text()
    assert yaml.safe_load(config_map["data"]["harness.yaml"])["azure"]["ca_file"] == "azure-ca.crt"
    mounts = job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "config", "mountPath": "/etc/wi-harness", "readOnly": True} in mounts


def _self_signed_pem() -> str:
    import trustme

    return trustme.CA().cert_pem.bytes().decode()


@pytest.mark.parametrize(
    ("edit", "extra", "expected"),
    [
        (lambda d: d["harness"].pop("client_id"), [], "harness.client_id: required"),
        (lambda d: d["harness"].pop("image"), [], "harness.image (or --image): required"),
        (lambda d: d["harness"].update(client_id="not-a-guid"), [], "harness.client_id: must be a GUID"),
        (lambda d: d.pop("workloads"), [], "no namespace to grant probe pods in"),
        (lambda d: None, ["--namespace", "Bad_NS"], "--namespace: must be a DNS-1123 label"),
        (lambda d: None, ["--image", "bad image"], "--image: must not contain whitespace"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, edit, extra: list[str], expected: str) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    edit(data)
    (tmp_path / "harness.yaml").write_text(yaml.safe_dump(data))
    done = render_cli("--config", str(tmp_path / "harness.yaml"), "--out", str(tmp_path / "out"), *extra)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr


def test_probes_only_needs_no_harness_section(tmp_path: Path) -> None:
    """README's troubleshooting: a probe pod by hand from manifests render; without a harness: section (a
    troubleshooter who runs no Job) it stopped at 'harness.client_id: required'. --probes-only writes probes/ alone
    (applied by hand in the lab: the pod completed, its log the wi-probe/v1 document)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data.pop("harness")
    (tmp_path / "harness.yaml").write_text(yaml.safe_dump(data))
    refused = render_cli("--config", str(tmp_path / "harness.yaml"), "--out", str(tmp_path / "job"))
    assert refused.returncode == 2 and refused.stderr.rstrip().endswith("for probe pods alone: --probes-only")
    done = render_cli("--config", str(tmp_path / "harness.yaml"), "--out", str(tmp_path / "out"), "--probes-only")
    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.yaml"))
    assert written and all(name.startswith("probes/") for name in written)
    data.pop("workloads")  # nothing to write: said, not an empty directory and exit 0
    (tmp_path / "harness.yaml").write_text(yaml.safe_dump(data))
    empty = render_cli("--config", str(tmp_path / "harness.yaml"), "--out", str(tmp_path / "none"), "--probes-only")
    assert empty.returncode == 2 and "harness.yaml lists no workloads, so there is no probe pod" in empty.stderr


def test_a_whole_cluster_job_runs_only_where_it_is_granted_probe_pods(tmp_path: Path) -> None:
    """By hand in the lab: harness.yaml without workloads, rendered with --namespace finance, applied, and run as
    that ServiceAccount with the Job's own arguments: orders/orders-sa (found by the inventory) was verified too and
    failed PROBE_FORBIDDEN, as the RBAC grants probe pods in finance alone. The Job now narrows to what it is
    granted (rerun by hand: PASS, finance/backend-sa alone); a config with workloads keeps its own run."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data.pop("workloads")
    (tmp_path / "harness.yaml").write_text(yaml.safe_dump(data))
    config, raw = load_for_render(tmp_path / "harness.yaml")
    render_bundle(config, raw, tmp_path / "whole", namespaces=["orders", "finance"])
    args = documents(tmp_path / "whole" / "02-job.yaml")[2]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-4:] == ["--namespace", "finance", "--namespace", "orders"]
    config, raw = load_for_render(EXAMPLE)
    render_bundle(config, raw, tmp_path / "listed", namespaces=["extra"])
    args = documents(tmp_path / "listed" / "02-job.yaml")[2]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace" not in args


def test_an_unwritable_output_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = render_cli("--config", str(EXAMPLE), "--out", str(tmp_path / "file"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert f"{tmp_path / 'file'}: is a file, not a directory" in done.stderr  # was 'cannot write there: Not a directory'
    done = render_cli("--config", str(EXAMPLE), "--out", str(tmp_path / "file" / "sub"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "cannot write there" in done.stderr


def _file_size_limit(size: int):  # type: ignore[no-untyped-def]
    def limit() -> None:  # in the child: a write past `size` bytes fails with EFBIG (Python ignores SIGXFSZ)
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE")
def test_a_failed_write_leaves_the_earlier_manifests_whole(tmp_path: Path) -> None:
    """Rendered again into the same --out, a write that failed (a full disk; here a file-size limit) left the
    earlier probe manifest cut off at the limit: YAML that kubectl apply -f DIR would take in part. Each file is
    now replaced whole or left as it was."""
    out = tmp_path / "out"
    assert render_cli("--config", str(EXAMPLE), "--out", str(out)).returncode == 0
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    done = subprocess.run([sys.executable, "-m", "harness", "manifests", "render", "--config", str(EXAMPLE), "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          preexec_fn=_file_size_limit(1024))
    assert done.returncode == 2 and "File too large" in done.stderr.splitlines()[-1], done.stderr
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before  # and no .tmp left


def test_the_job_s_pod_is_never_swept() -> None:
    """The Job's pod carries the Workload ID label but no run id: --sweep (probe pods only) leaves it."""
    from fakeworld import World

    kube = World.healthy().backend().kube
    kube.pods[("wi-harness", "wi-harness-abcde")] = {  # type: ignore[attr-defined]
        "metadata": {"name": "wi-harness-abcde", "namespace": "wi-harness",
                     "labels": {"app.kubernetes.io/managed-by": "wi-harness", "app.kubernetes.io/name": "wi-harness"}},
        "spec": {}, "status": {"phase": "Running"},
    }
    assert sweep(kube, ["wi-harness"], "this-run") == []


def test_wi_harness_maps_test_arguments_into_the_installed_suites() -> None:
    assert SUITES_DIR.is_dir() and (MANIFESTS_DIR / "probe-pod.yaml.j2").is_file()
    suites = str(SUITES_DIR)
    assert suite_arguments(["--lab", "-n", "2"]) == [suites, "--lab", "-n", "2"]
    assert suite_arguments(["--config", "h.yaml", "suites/test_cluster.py::test_cluster"]) == [
        "--config", "h.yaml", f"{suites}/test_cluster.py::test_cluster"]
    assert suite_arguments(["test_workloads.py", "-k", "finance"]) == [f"{suites}/test_workloads.py", "-k", "finance"]
    assert suite_arguments(["suites"]) == [suites]
    assert suite_arguments(["--config", "other.py"]) == [suites, "--config", "other.py"]  # not a suite: left alone


def test_wi_harness_says_in_one_line_that_cache_options_are_not_available(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """wi-harness runs with -p no:cacheprovider (read-only site-packages): --lf was pytest's two-line usage error
    'unrecognized arguments' with the pytest.ini path."""
    from harness.console import main

    assert main(["--config", "harness.yaml", "--lf"]) == pytest.ExitCode.USAGE_ERROR
    assert capsys.readouterr().err.splitlines() == [
        "wi-harness: --lf needs pytest's cache, which wi-harness leaves off (the installed suites may be "
        "read-only): run pytest suites with it from a checkout, or name the checks (-k, --workload)"]


def test_in_cluster_needs_the_service_variables_and_a_mounted_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kubernetes.config.incluster_config as incluster

    from harness.collect.kube_api import kube_target_problem

    token = tmp_path / "token"
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    problem = kube_target_problem(None, None)  # no token mounted (automountServiceAccountToken: false): why, said
    assert problem is not None and ": file not found: write one with az aks get-credentials --resource-group RG " \
        "--name CLUSTER, or set cluster.kubeconfig in harness.yaml; in a pod" in problem
    assert problem.endswith(
        f"; in a pod (KUBERNETES_SERVICE_HOST is set) but no ServiceAccount token at {token}: "
        "set automountServiceAccountToken: true on the pod (or its ServiceAccount)"
    )
    token.write_text("a-token")
    assert kube_target_problem(None, None) is None  # in-cluster: load_incluster_config
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert "KUBERNETES_SERVICE_HOST" not in str(kube_target_problem(None, None))  # not in a pod: no word of it


@pytest.mark.slow
def test_the_wheel_carries_the_suites_the_templates_and_the_console_script(tmp_path: Path) -> None:
    """What a Job image or a CI runner installs (pip wheel, as the Dockerfile's harness-wheel stage builds it)."""
    import zipfile

    source = tmp_path / "src"  # what the Dockerfile copies, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("probe", "harness", "suites", "manifests"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("wi_harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"suites/{p.name}" for p in (ROOT / "suites").glob("test_*.py")} <= names
    assert {f"manifests/{p.name}" for p in (ROOT / "manifests").glob("*.j2")} <= names
    assert "harness/console.py" in names and "probe/__main__.py" in names
    templates = ROOT / "harness" / "report" / "templates"
    assert {f"harness/report/templates/{p.name}" for p in templates.iterdir() if p.suffix in (".j2", ".css")} <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "wi-harness = harness.console:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
