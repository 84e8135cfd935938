"""Stock public images in the lab's kubelet: Python images run a stdlib-only Python of the host, busybox and
alpine the host's shell, with the image config's ENTRYPOINT/CMD split; anything unknown is not found. And the
zero-build probe: python3 -m probe from a ConfigMap mounted in a stock Python image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_kubelet import MiniLab, phase_is, waiting_reason

from lab.kube.images import ImageConfig, parse_image, stock_image

REPO = Path(__file__).resolve().parents[2]
MCR_PYTHON = (
    "mcr.microsoft.com/azurelinux/base/python:3.12"
    "@sha256:d1a693353b7db0383e66a61416a049f617fdfb89435dcaac543749fb4f14950a"
)
NON_ROOT = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532}
REPORT = (
    "import json, os, sys, importlib.util as u; "
    "print(json.dumps({'azure': u.find_spec('azure') is not None, 'uid': os.getuid(), 'path': sys.path, "
    "'prefix': sys.prefix}))"
)


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory):
    running = MiniLab(tmp_path_factory.mktemp("stock-images")).start()
    yield running
    running.stop()


def test_which_images_the_lab_knows_without_registration() -> None:
    assert stock_image(parse_image("python:3.12-slim")) == ImageConfig(cmd=("python3",), runtime="python")
    assert stock_image(parse_image(MCR_PYTHON)) == ImageConfig(cmd=("python3",), runtime="python")
    assert stock_image(parse_image("busybox:1.37")) == ImageConfig(cmd=("sh",), runtime="shell")
    assert stock_image(parse_image("alpine")) == ImageConfig(cmd=("/bin/sh",), runtime="shell")
    for unknown in ("mcr.microsoft.com/azurelinux/base/nodejs:20", "example.azurecr.io/python:3", "nginx"):
        assert stock_image(parse_image(unknown)) is None, unknown


def test_command_and_args_combine_with_the_image_config_as_on_a_node() -> None:
    image = ImageConfig(entrypoint=("/ep",), cmd=("foo", "bar"))
    assert image.argv(None, []) == ["/ep", "foo", "bar"]
    assert image.argv(["/other"], []) == ["/other"]
    assert image.argv(None, ["zoo"]) == ["/ep", "zoo"]
    assert image.argv(["/other"], ["zoo"]) == ["/other", "zoo"]


@pytest.mark.parametrize("image", ["python:3.12", MCR_PYTHON])
def test_a_stock_python_image_has_the_standard_library_only(mini: MiniLab, image: str) -> None:
    name = "py-" + image.split("/")[0].split(":")[0].replace(".", "-")
    mini.pod(name, [{"name": "main", "image": image, "command": ["python3", "-c", REPORT]}],
             securityContext=NON_ROOT)
    mini.wait(name, phase_is("Succeeded"))
    seen = json.loads(mini.logs(name, "main"))
    assert seen["azure"] is False  # no azure-identity: the probe's SDK cross-check is image mode's
    assert str(REPO) not in seen["path"]  # nothing of this repository: the probe must come from the ConfigMap
    if mini.kubelet.sandbox.kind == "root":
        assert seen["uid"] == 65532
    events = {e["reason"]: e["message"] for e in mini.events("default", name)}
    assert events["Pulled"].startswith(f'Successfully pulled image "{image}" in ')


def test_args_alone_replace_cmd_so_a_python_image_execs_them(mini: MiniLab) -> None:
    """python:3.12 has no ENTRYPOINT: args ["-c", ...] alone are the whole command line, as on a node."""
    mini.pod("args-only", [{"name": "main", "image": "python:3.12", "args": ["-c", "print(1)"]}])
    pod = mini.wait("args-only", phase_is("Failed"))
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "StartError"
    assert 'exec: "-c": executable file not found in $PATH' in terminated["message"]


def test_busybox_and_alpine_run_the_host_shell(mini: MiniLab) -> None:
    mini.pod("bb", [{"name": "main", "image": "busybox:1.37", "command": ["sh", "-c", "echo hello from sh"]}])
    mini.pod("alp", [{"name": "main", "image": "alpine:3.20"}])  # CMD /bin/sh, stdin empty: exits 0 at once
    mini.wait("bb", phase_is("Succeeded"))
    mini.wait("alp", phase_is("Succeeded"))
    assert mini.logs("bb", "main") == "hello from sh\n"


def test_an_unknown_image_is_not_found(mini: MiniLab) -> None:
    image = "mcr.microsoft.com/azurelinux/base/nodejs:20"
    mini.pod("nope", [{"name": "main", "image": image, "command": ["node"]}])
    pod = mini.wait("nope", waiting_reason("ImagePullBackOff"))
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"].startswith(
        f'Back-off pulling image "{image}": ErrImagePull: rpc error: code = NotFound'
    )
    messages = [e["message"] for e in mini.events("default", "nope")]
    assert "Error: ErrImagePull" in messages and "Error: ImagePullBackOff" in messages


def probe_configmap() -> dict[str, Any]:
    files = {path.name: path.read_text() for path in sorted((REPO / "probe").glob("*.py"))}
    return {"metadata": {"name": "wi-probe-src", "namespace": "default"}, "data": files}


def test_the_zero_build_probe_runs_from_a_configmap_in_a_stock_image(mini: MiniLab) -> None:
    config_map = probe_configmap()
    mini.add("configmaps", config_map)
    items = [{"key": key, "path": f"probe/{key}"} for key in config_map["data"]]
    mini.pod("probe", [{
        "name": "probe", "image": MCR_PYTHON, "command": ["python3", "-m", "probe"],
        "args": ["--config-json", json.dumps({"checks": []})],
        "env": [{"name": "PYTHONPATH", "value": "/opt/wi-probe"},
                {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        "volumeMounts": [{"name": "src", "mountPath": "/opt/wi-probe", "readOnly": True}],
    }], securityContext=NON_ROOT,
        volumes=[{"name": "src", "configMap": {"name": "wi-probe-src", "items": items,
                                               "defaultMode": 0o444}}])
    mini.wait("probe", phase_is("Succeeded", "Failed"))
    log = mini.logs("probe", "probe")
    doc = json.loads(log[log.index("{"):])
    assert doc["schema"] == "wi-probe/v1"
    steps = {step["name"]: step for step in doc["steps"]}
    assert steps["config"]["status"] == "pass"
    assert steps["env"]["status"] == "fail"  # no webhook here: no AZURE_* env, as outside Workload ID


def test_an_empty_dir_over_tmp_hides_the_hosts_tmp_but_not_the_image(mini: MiniLab) -> None:
    """Read-only-root pods mount an emptyDir at /tmp. The lab's images are host directories, often under /tmp
    (its state dir, a checkout or a venv there): the volume must hide the host's /tmp, never the image's files."""
    script = "import os, sys; open('/tmp/mine', 'w').write('x'); print(sys.prefix, sorted(os.listdir('/tmp')))"
    mini.pod("tmp-volume", [{"name": "main", "image": "python:3.12", "command": ["python3", "-c", script],
                             "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
             securityContext=NON_ROOT, volumes=[{"name": "tmp", "emptyDir": {}}])
    mini.wait("tmp-volume", phase_is("Succeeded"))
    prefix, _, listing = mini.logs("tmp-volume", "main").strip().partition(" ")
    seen = eval(listing)  # noqa: S307 - a list literal this test printed
    assert "mine" in seen
    assert prefix == str(mini.kubelet.stdlib_python().parent)  # the image's own interpreter, not another python3
    # the host's /tmp is hidden: only what the pod wrote and the top directory of the image's own path show
    assert len(seen) <= 2, seen
    if prefix.startswith("/tmp/"):
        assert prefix.split("/")[2] in seen
