"""Every bench/ script runs once in smoke mode (tiny sizes) and prints its table and one JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT, STARTER

pytestmark = pytest.mark.slow

DATASETS = ROOT.parent / "shared" / "datasets"
SMOKED = {
    "api.py",
    "classify.py",
    "end_to_end.py",
    "latency.py",
    "privacy.py",
    "quality.py",
    "replicas.py",
    "retrain.py",
    "state.py",
    "thresholds.py",
}


def _bench(script: str, *args: str, cwd: Path) -> tuple[str, dict[str, Any]]:
    """Run a bench script as `python bench/<script>` is run; (its table, its JSON line)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the checkout under test, behind the script's own folder
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    return "\n".join(lines[:-1]), json.loads(lines[-1])


def test_every_bench_script_has_a_smoke_run() -> None:
    assert {p.name for p in (ROOT / "bench").glob("*.py")} == SMOKED  # a new script needs a test here


def test_no_bench_script_shadows_a_package() -> None:
    assert not {p.stem for p in (ROOT / "bench").glob("*.py")} & {"daemon", "connectors", "tests"}


def test_quality_smoke(tmp_path: Path) -> None:
    if not (DATASETS / "softoft-tickets").is_dir():
        pytest.skip("needs ../shared/datasets")
    args = ["--datasets", "softoft-tickets", "--seeds", "13", "--rows", "300", "--tfidf-only", "--out", str(tmp_path)]
    table, summary = _bench("quality.py", *args, cwd=tmp_path)
    assert "ticketd acc" in table and "softoft-tickets" in table
    label = summary["datasets"]["softoft-tickets"]["queue"]
    assert 0.0 <= label["accuracy_mean"] <= 1.0 and 0.0 <= label["baseline_accuracy_mean"] <= 1.0
    assert summary["seeds"] == [13] and isinstance(summary["meets_target"], bool)


def test_classify_smoke(tiny_model: Path, sample_csv: Path, tmp_path: Path) -> None:
    args = ["--model", str(tiny_model), "--data", str(sample_csv), "--n", "8", "--threads", "1", "--peer-layers", "1"]
    table, summary = _bench("classify.py", *args, cwd=tmp_path)
    assert "pytorch-pipeline" in table and "onnx-fp32" in table
    assert "peer: BERT-base pipeline" in table and "ticketd: served heads" in table
    assert summary["tickets"] == 8 and summary["fp32_agreement"] >= 0.99
    assert summary["vs_peer_stack_speedup"] > 0 and summary["peer_cpu_ms_per_ticket"] > 0
    assert summary["serving_imports_torch"] is False


def test_end_to_end_smoke(tmp_path: Path) -> None:
    store = tmp_path / "models"
    cmd = [sys.executable, "-m", "daemon", "train", str(STARTER), "--store", str(store), "--promote", "--tfidf-only"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    table, summary = _bench("end_to_end.py", "--model", str(store), "--n", "5", cwd=tmp_path)
    assert "daemon / model" in table
    assert summary["n"] == 5 and summary["routed"] + summary["left_unrouted"] == 5
    assert summary["daemon_tickets_per_s"] > 0 and summary["model_tickets_per_s"] > 0


def test_replicas_smoke(tmp_path: Path) -> None:
    """Three replicas on a private PostgreSQL: a few kills, one pause, then 1 and 3 replicas over four connectors."""
    store = tmp_path / "models"
    cmd = [sys.executable, "-m", "daemon", "train", str(STARTER), "--store", str(store), "--promote", "--tfidf-only"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    args = ["--model", str(store), "--tickets", "60", "--kills", "2", "--pauses", "1"]
    table, summary = _bench("replicas.py", *args, cwd=tmp_path)
    assert "| failover | 3 | 2 | 2 (" in table and "| throughput | 3 | 4 (spread " in table
    assert "| pause | 2 | 2 | 1 SIGSTOPs past the lease" in table
    assert summary["lost"] == 0 and summary["doubled"] == 0 and summary["kills"] == 2 and summary["pauses"] == 1
    assert {"failover_p50_s", "failover_p99_s", "throughput_1_per_s", "throughput_3_per_s"} <= set(summary)


def test_latency_smoke(tmp_path: Path) -> None:
    """Push and poll on the fake Zammad and a Maildir (the real Znuny's start is left to the full run)."""
    store = tmp_path / "models"
    cmd = [sys.executable, "-m", "daemon", "train", str(STARTER), "--store", str(store), "--promote", "--tfidf-only"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    args = ["--model", str(store), "--tickets", "4", "--rate", "8", "--poll-interval", "5", "--desks", "zammad,maildir"]
    table, summary = _bench("latency.py", *args, cwd=tmp_path)
    assert "| maildir | push | 4 | 0 |" in table and "| zammad (fake) | poll | 4 | 0 |" in table
    assert summary["lost"] == 0 and set(summary["runs"]) == {
        "zammad/push",
        "zammad/poll",
        "maildir/push",
        "maildir/poll",
    }
    # The next poll comes at least 4.5 s after the tickets (created within 0.5 s of the first poll's end), so
    # only the push or the file event can have routed every ticket sooner.
    assert summary["push_p99_s"] < 2.5 and summary["poll_p50_s"] >= 2.5


def test_privacy_smoke(sample_csv: Path, tmp_path: Path) -> None:
    table, summary = _bench("privacy.py", "--data", str(sample_csv), cwd=tmp_path)
    assert "macro-F1 raw" in table and "seed 29" in table
    assert set(summary["macro_f1_delta_mean"]) == {"queue", "priority"} and isinstance(summary["target_met"], bool)


def test_state_smoke(tmp_path: Path) -> None:
    table, summary = _bench("state.py", "--ledger", "300,3000", "--training", "100", cwd=tmp_path)
    assert "report s" in table and len(table.splitlines()) == 3  # the head and one row per size
    assert summary["overhead_ratio_1m_vs_10k"] > 0 and summary["report_seconds_1m"] >= 0
    assert 0 < summary["peak_rss_mib_200k"] < 1000


def test_retrain_smoke(tmp_path: Path) -> None:
    if not (DATASETS / "softoft-tickets").is_dir():
        pytest.skip("needs ../shared/datasets")
    args = ["--sizes", "400", "--full-sizes", "", "--quality-datasets", "softoft-tickets", "--rows", "300"]
    args += ["--caps", "100", "--max-length", "32", "--epochs", "1", "--seeds", "13", "--out", str(tmp_path)]
    table, summary = _bench("retrain.py", *args, cwd=tmp_path)
    assert "TF-IDF only" in table and "held-out quality against the cap" in table
    assert summary["tfidf_only_minutes"]["400"] > 0 and summary["retrain_minutes_50k"] is None
    by_cap = summary["macro_f1_delta_by_cap"]["softoft-tickets"]
    assert by_cap["0"] == {"queue": 0.0, "priority": 0.0} and set(by_cap["100"]) == {"queue", "priority"}
    assert summary["cap_binding"] == {"softoft-tickets": False}  # 240 training rows: the default cap never binds
    assert summary["meets_target"] is False


def test_thresholds_smoke(tmp_path: Path) -> None:
    if not (DATASETS / "softoft-tickets").is_dir():
        pytest.skip("needs ../shared/datasets")
    args = ["--datasets", "softoft-tickets", "--seeds", "13", "--rows", "400", "--tfidf-only", "--out", str(tmp_path)]
    table, summary = _bench("thresholds.py", *args, cwd=tmp_path)
    assert "(c) pooled" in table and "| softoft-tickets | 13 | queue | 0.9 |" in table
    assert summary["cells"] == 4  # queue and priority, at 0.9 and 0.8
    for target in ("0.9", "0.8"):
        cell = summary["results"]["softoft-tickets"]["13"]["queue"][target]
        assert cell["n"] == 80
        for rule in ("a", "b", "c", "d"):
            assert 0.0 <= cell[rule]["share"] <= 1.0 and cell[rule]["routed"] <= 80
        evidence = cell["evidence_pooled"]
        if evidence["routed"]:  # the pooled rule's fit meets its bound on the evidence it was fitted on
            assert evidence["lower"] >= float(target) - 1e-4
    assert summary["pooled_at_least_global"] + len([m for m in summary["misses"] if "<" in m]) == summary["cells"]


def test_api_smoke(tmp_path: Path) -> None:
    table, summary = _bench("api.py", "--seconds", "0.5", "--html-mb", "0.5", "--bursts", "1", cwd=tmp_path)
    assert "kept-alive connection" in table and "refused unread" in table and "RSS" in table
    keep_alive = summary["keep_alive_per_s"]
    assert keep_alive["nodelay"] > keep_alive["nagle"]  # ~40 ms a request with Nagle, ~1 ms without
    assert summary["guessing"]["bearer"]["limited"]["answered"] == 10  # the default failed_auth_per_minute
    assert summary["guessing"]["login"]["limited"]["answered"] == 10
    assert summary["guessing"]["bearer"]["unlimited"]["answered"] > 10
    assert summary["html_burst"]["healthz_probes"] >= 1
