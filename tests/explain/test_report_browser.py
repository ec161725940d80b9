"""The explain report in a real browser (headless Chromium): cards, pictures, sorting.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch


torch.set_num_threads(1)

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless browser test needs /usr/bin/chromium (apt-get install -y chromium)"
)
MOLECULES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "<script>alert(1)</script>"]


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


@pytest.fixture
def report(make_tiny_run, tmp_path) -> tuple[Path, Path]:
    """A tiny (untrained) igt-n run and where its report goes."""
    return make_tiny_run(tmp_path / "run"), tmp_path / "report"


def test_report_renders_every_card_and_picture(run_cli, report, tmp_path, capsys):
    run, out = report
    code, _, err = run_cli(["explain", run, "--smiles", *MOLECULES, "--out", out, "-q"], capsys)
    assert code == 1, err  # the last SMILES cannot be read: reported, not dropped
    url = (out / "index.html").resolve().as_uri()

    dom = chromium(tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body))
    assert dom.stdout.count('<article class="card') == len(MOLECULES)
    assert attrs["data-images-total"] == str(len(MOLECULES) - 1)
    assert attrs["data-images-loaded"] == attrs["data-images-total"] and attrs["data-images-failed"] == "0"
    assert "<script>alert(1)</script>" not in dom.stdout  # escaped text, never markup

    # the sort menu (opened through the URL hash): predictions in descending order
    dom = chromium(tmp_path / "profile", "--dump-dom", url + "#sort=prediction:desc")
    values = [float(v) for v in re.findall(r'<article class="card"[^>]*data-prediction="([^"]+)"', dom.stdout)]
    assert len(values) == len(MOLECULES) - 1 and values == sorted(values, reverse=True)
    assert dom.stdout.rfind('class="card failed"') > dom.stdout.rfind('class="card"')  # missing values last

    shot = tmp_path / "shot.png"
    result = chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1400", url)
    assert result.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20000
