"""benchmarks/tile_speed.py runs end to end on a tiny raster and prints every figure (#26).

Only the plumbing is checked (commands run, chips counted, ratios printed), never a time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tile_speed_prints_times_counts_and_ratios(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tile_speed.py"), "--size",
                           "300", "--chip", "100", "--rounds", "2", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2 paired rounds" in out
    assert re.search(r"^geogan tile: +median [\d.]+ s wall, [\d.]+ s CPU, 9 chips$", out, re.M)
    assert re.search(r"^plain read\+write: +median .* 9 chips$", out, re.M)
    assert re.search(r"^ratio geogan / plain read: [\d.]+ wall", out, re.M)
    if shutil.which("gdal_retile.py") or shutil.which("gdal_retile"):
        assert re.search(r"^gdal_retile\.py: +median .* 9 chips$", out, re.M)
        assert re.search(r"^ratio gdal_retile / geogan: [\d.]+ wall, [\d.]+ CPU", out, re.M)
    else:
        assert "gdal_retile.py not found" in out
    assert list(tmp_path.iterdir()) == []  # its raster and chips are cleaned up
