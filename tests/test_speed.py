"""`lmppm bench --suite speed` on the bundled models, at batch 1 only so that it runs in seconds."""

import json

from typer.testing import CliRunner

from lmppm_cli.cli import app
from lmppm_cli.experiments.bench.speed import run_speed


def test_speed_suite_times_every_restorer_step_part_and_precision(tmp_path):
    rows = run_speed(tmp_path, seed=0, limit=1, device="cpu", min_seconds=0.0, classical=False)
    data = json.loads((tmp_path / "results.json").read_text())
    by = {(r["table"], r["name"]): r for r in data["rows"]}
    methods = [name for table, name in by if table == "methods"]
    assert [m.split(" (")[0] for m in methods] == [
        "LMPPM",
        "Ablation_lmppm",
        "DAE single pass",
        "LDM default",
        "LDM full chain",
    ]
    assert all(
        r["batch"] == 1 and r["images_per_s"] > 0 and r["peak_mb"] > 0 for r in data["rows"] if r["table"] == "methods"
    )
    rate = {m.split(" (")[0]: by["methods", m]["images_per_s"] for m in methods}
    assert rate["LMPPM"] > 10 * rate["LDM full chain"]  # 8 flow steps against 2000 reverse steps
    parts = [name for table, name in by if table == "step"]
    assert len(parts) == 8 and all(by["step", p]["seconds"] > 0 for p in parts)
    precision = [r for r in data["rows"] if r["table"] == "precision"]
    assert [r["name"] for r in precision] == [
        f"{m}, {p}" for m in ("LMPPM", "DAE single pass") for p in ("fp32", "bf16", "fp16")
    ]
    assert all(r["psnr_vs_fp32"] > 40 for r in precision)
    assert [name for table, name in by if table == "photo"] == ["photos U-Net, tiles"]
    text = (tmp_path / "results.md").read_text()
    assert "Machine: CPU" in text and "x the LDM's full chain" in text and "s / megapixel" in text
    page = [r for r in data["rows"] if r["table"] == "report"]  # the report page beside its restore run
    assert [r["batch"] for r in page] == [1, 1] and page[0]["seconds"] > page[1]["seconds"] > 0
    assert "| report page |" in text and "of the restore run's own" in text
    assert len(rows) == len(data["rows"])


def test_speed_suite_refuses_a_missing_device_in_one_sentence(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--suite", "speed", "-o", str(tmp_path / "s"), "--device", "cuda:7"])
    assert result.exit_code == 2 and "Traceback" not in result.output and not (tmp_path / "s").exists()
