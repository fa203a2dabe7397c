"""Progress on the command line: readable amounts and speeds, and no bar in a log file."""

from __future__ import annotations

import logging
import re

import pytest
from click.testing import CliRunner

from geogan.cli import main
from geogan.cli._progress import Reporter, format_amount, format_line, format_rate

#: What a tqdm bar leaves in a stream: carriage returns and ``NN%|``.
BAR_RE = re.compile(r"\r|\d+%\|")


@pytest.mark.parametrize(("done", "total", "unit", "text"), [
    (0.5635133333333334, 0.676216, "Mpx", "0.56/0.68 Mpx"),
    (0.0, 12.5, "Mpx", "0.00/12.50 Mpx"),
    (0.003, 0.004, "Mpx", "0.003/0.004 Mpx"),  # not 0.00/0.00
    (12, 40, "chips", "12/40 chips"),
    (12.0, 40.0, "windows", "12/40 windows"),
    (3, None, "steps", "3/? steps"),
])
def test_amounts_are_whole_or_rounded(done, total, unit, text):
    assert format_amount(done, total, unit) == text


@pytest.mark.parametrize(("rate", "unit", "text"), [
    (1 / 3.36, "Mpx", "0.30 Mpx/s"),  # tqdm wrote 3.36s/Mpx
    (34663.67, "windows", "34664 windows/s"),
    (2.46, "steps", "2.5 steps/s"),
    (0.04, "steps", "0.04 steps/s"),  # a slow step: still steps/s, not 25 s/step
    (None, "Mpx", "? Mpx/s"),
])
def test_speeds_are_units_per_second(rate, unit, text):
    assert format_rate(rate, unit) == text


def test_a_log_line_says_percent_amounts_speed_and_time_left():
    assert format_line("translate", 0.338, 0.676216, "Mpx", 0.3, 1.2) == (
        "translate: 50% (0.34/0.68 Mpx, 0.30 Mpx/s, 1 s left)")
    assert format_line("train", 500, 500, "steps", 2.0, 0.0) == (
        "train: 100% (500/500 steps, 2.0 steps/s)")
    assert "1:01:05 left" in format_line("train", 1, 10, "steps", 1.0, 3665)


def test_log_mode_writes_one_line_per_tenth(caplog):
    caplog.set_level(logging.INFO, logger="geogan")
    rep = Reporter("log", "mosaic", "windows")
    for i in range(1, 201):
        rep(i, 200)
    lines = [r.getMessage() for r in caplog.records if r.name == "geogan.progress"]
    assert len(lines) == 10
    assert lines[0].startswith("mosaic: 10% (20/200 windows, ")
    assert lines[-1].startswith("mosaic: 100% (200/200 windows, ")


def _bar_run(args: list[str], caplog) -> tuple[object, list[str]]:
    caplog.clear()
    result = CliRunner().invoke(main, ["-v", "--progress", "bar", *map(str, args)])
    assert result.exit_code == 0, result.output
    lines = [r.getMessage() for r in caplog.records if r.name == "geogan.progress"]
    return result, lines


def test_without_a_terminal_no_bar_is_drawn(make_raster, tmp_path, tiny_checkpoint, caplog):
    """CliRunner's stderr is no terminal, as a log file or a pipe: plain log lines, no bar."""
    caplog.set_level(logging.INFO, logger="geogan")
    src = make_raster("r.tif", width=64, height=48)
    result, lines = _bar_run(["translate", tiny_checkpoint, src, "-o", tmp_path / "t.tif",
                              "--tile", "32", "--overlap", "8"], caplog)
    assert not BAR_RE.search(result.stderr), result.stderr
    assert result.stdout.strip() == str(tmp_path / "t.tif")
    assert lines and lines[-1].startswith("translate: 100% (")
    assert re.search(r"\([\d.]+/[\d.]+ Mpx, [\d.]+ Mpx/s\)$", lines[-1])
    result, lines = _bar_run(["tile", src, "-o", tmp_path / "chips", "--size", "32"], caplog)
    assert not BAR_RE.search(result.stderr) and lines[-1].startswith("tile: 100% (")
    result, lines = _bar_run(["mosaic", tmp_path / "chips", "-o", tmp_path / "m.tif"], caplog)
    assert not BAR_RE.search(result.stderr)
    assert re.search(r"^mosaic: 100% \(\d+/\d+ windows, ", lines[-1])
