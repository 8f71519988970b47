"""The API process never imports torch: classification is onnxruntime, training a child process, the dashboard
numpy and Jinja2."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.web import TOKEN

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pydantic import SecretStr
    from fastapi.testclient import TestClient
    from daemon.web import Services, create_app
    from daemon.config import ApiSection
    from daemon.metrics import Metrics
    from daemon.training.champion import RetrainPolicy
    from daemon.ml.serving import ModelHolder
    from tests.support.web import linked_store

    model, sample, work, token = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    holder = ModelHolder(linked_store(work / "models", model, 1))
    holder.load()
    policy = RetrainPolicy(min_new_examples=0, epochs=1, max_length=32, train_args=("--tfidf-only",))
    services = Services(api=ApiSection(tokens=[SecretStr(token)]), model=holder, datasets_dir=work / "data",
                        workdir=work / "work", metrics=Metrics(), policy=policy)
    auth = {"Authorization": "Bearer " + token}
    out = {}
    with TestClient(create_app(services), base_url="http://localhost") as client:
        out["classify"] = client.post("/api/v1/classify", json={"ticket_data": "VPN down"}, headers=auth).status_code
        out["upload"] = client.post("/api/v1/train-data", content=sample.read_bytes(),
                                    headers={**auth, "content-type": "text/csv"}).status_code
        job = client.post("/api/v1/train", json={"promote": "always"}, headers=auth).json()["job_id"]
        while client.get("/api/v1/train/" + job, headers=auth).json()["state"] not in ("succeeded", "failed"):
            time.sleep(0.5)
        out["job"] = client.get("/api/v1/train/" + job, headers=auth).json()["outcome"]
        out["classify_after"] = client.post("/api/v1/classify", json={"ticket_data": "VPN down"},
                                            headers=auth).json()["model_version"]
        client.post("/ui/login", data={"token": token})
        out["ui"] = [client.get("/ui/" + page).status_code for page in ("overview", "quality", "models", "advisor")]
    out["heavy"] = sorted(m for m in ("torch", "transformers") if m in sys.modules)
    print(json.dumps(out))
    """
)


def test_api_process_never_imports_torch(tiny_model: Path, sample_csv: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_model), str(sample_csv), str(tmp_path), TOKEN],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"classify": 200, "upload": 201, "job": "promoted", "classify_after": "v2", "ui": [200] * 4}
    assert result == {**expected, "heavy": []}
