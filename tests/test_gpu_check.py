"""benchmarks/gpu_check.py: a clean no-op without CUDA, and its plumbing in a tiny CPU dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    return proc, cwd, tmp


def test_without_cuda_it_says_so_and_does_nothing(tmp_path):
    before = sorted(p.name for p in SCRIPT.parent.iterdir())
    proc, cwd, tmp = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "no CUDA device here" in proc.stderr and "nothing to check" in proc.stderr
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []
    assert sorted(p.name for p in SCRIPT.parent.iterdir()) == before


def test_a_cpu_dry_run_goes_through_every_step_and_cleans_up(tmp_path):
    proc, cwd, tmp = _run(tmp_path, "--cpu-dry-run", "--skip", "train_speed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["ok"] is True and result["failed"] == []
    checks = result["checks"]
    for model in ("cyclegan", "pix2pix", "cut"):
        assert checks[f"train_check.{model}.fp32"]["ok"]
    assert checks["translate.crop_vs_cpu"]["same_grid"]
    assert checks["translate.end_to_end"]["complete"]
    assert result["translate_mpx_s_end_to_end"] > 0 and result["translate_mpx_s_generator"] > 0
    assert checks["train_loop"]["step"] == 2 and checks["train_loop"]["finite_losses"]
    assert "train_speed.cyclegan" not in checks
    # its own folder is gone; torch may keep its compile cache there
    assert list(cwd.iterdir()) == []
    assert [p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_")] == []
