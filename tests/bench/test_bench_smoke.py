"""The benchmark harness still runs: quick mode, one small scenario, real processes.

No timing is asserted (the machine is shared); only that the harness completes, that every
request succeeded, and that the result file has the shape the README and CI rely on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_complete_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run_all.py"),
            "--quick",
            "--scenarios",
            "nonstream",
            "--configs",
            "h1",
            "--no-h2load",
            "--duration",
            "0.3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = orjson.loads((out / "quick.json").read_bytes())
    assert report["errors_total"] == 0
    assert {"machine", "plan", "runs", "h2load", "targets", "elapsed_s"} <= report.keys()
    assert {"cores", "cpu_model", "python", "cython", "compiled_codec"} <= report["machine"].keys()
    runs = {(r["target"], r["concurrency"]): r for r in report["runs"]}
    assert set(runs) == {("direct", 1), ("direct", 16), ("proxy", 1), ("proxy", 16)}
    for row in runs.values():
        assert row["scenario"] == "nonstream"
        assert row["errors"] == 0
        assert row["requests"] > 0
        for key in ("rps", "server_cpu_s_per_req", "server_peak_rss_mib", "loadgen_cpu_util"):
            assert isinstance(row[key], int | float)
        assert set(row["ttfb_ms"]) == set(row["total_ms"]) == {"p50", "p99"}
    ratios = runs[("proxy", 16)]["ratios"]
    assert {"rps", "ttfb_p50", "total_p50", "total_p99", "cpu_per_req", "peak_rss"} <= set(ratios)
    assert (out / "quick.md").read_text().count("| 1. non-streaming |") == 2
    assert (out / "quick.png").read_bytes().startswith(b"\x89PNG")
