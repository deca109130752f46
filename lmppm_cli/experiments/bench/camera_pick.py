"""Suite `camera`: photos as cameras write them (core/camera.py), whole, on the six validation scenes and
on coffee, the test photo. Rows: a clean camera JPEG, daylight, indoor and night sensor noise, and the
indoor level through a demosaicing method training never draws (held out). Each row is scored against
the same camera's output without noise and without the JPEG. Methods: the input itself (doing nothing),
the model under test (`-m`, default `photos-camera`) in fp32 and in bf16 (where the device computes it), the
bundled `photos`, blind BM3D, and the default (what `lmppm restore photo.jpg` runs once this model and its
table are bundled: `default_cells`). Seconds per megapixel are measured side by side on the same photos.

It writes results.json, results.md and `camera-vs-bm3d.json`: per camera row (the held-out row left
out), the mean over the validation scenes of the estimated noise and of the model's and BM3D's PSNR and
SSIM, which `lmppm restore` reads to send a camera's photo to the camera model (domain.camera_method).
Coffee is scored the same way and reported apart; it chooses nothing. A re-run into the same folder with
the same seed and draws keeps the cells that do not depend on the model (input, photos, BM3D).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lmppm_cli.core.precision import cpu_has_bf16
from lmppm_cli.experiments.bench.photo_pick import (
    BM3D,
    classical_cells,
    markdown,
    pick_table,
    pooled,
    save_results,
)
from lmppm_cli.experiments.bench.photos import (
    camera_rows,
    classical_rows,
    learned_rows,
    score_photo,
    whole,
)
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.data import photo_tensor, shipped_photo, validation_photos
from lmppm_cli.files.devices import pick_device
from lmppm_cli.files.weights import load_model, resolve_model
from lmppm_cli.methods import restorer

MODEL, INPUT, SHIPPED = "camera model", "input", "photos"
DEFAULT = "default (a JPEG, no --model)"
BF16 = "camera model, bf16"  # the same under autocast (AMX), where the CPU computes bf16
TEST_SCENE = "coffee"
TABLE = "camera-vs-bm3d.json"


def run_camera_pick(
    out_dir,
    *,
    seed: int,
    limit: int | None = None,
    on_stage=lambda s: None,
    models: dict | None = None,
    draws: int = 1,
    device: str = "auto",
    extra_photos: str | None = None,
) -> dict:
    """The camera rows on the validation scenes (the first `limit`) and coffee; see the module docstring."""
    dev = pick_device(device)
    path = resolve_model((models or {}).get("lmppm") or "photos-camera")
    net = load_model(path, dev)
    methods = {
        INPUT: lambda x: x,
        MODEL: learned_rows(net, None)["LMPPM"],
        SHIPPED: learned_rows(load_model(resolve_model("photos"), dev), None)["LMPPM"],
        BM3D: classical_rows()[BM3D],
    }
    if dev.type == "cuda" or cpu_has_bf16():
        methods[BF16] = whole(net, restorer(net, precision="bf16"))
    scenes = dict(list(validation_photos(extra_photos).items())[:limit])
    scenes[TEST_SCENE] = photo_tensor(shipped_photo(TEST_SCENE), limit=None)
    out = Path(out_dir)
    known = classical_cells(out / "results.json", seed, draws, (INPUT, SHIPPED, BM3D))
    cells: list[dict] = []
    for name, clean in scenes.items():
        stage = lambda s, name=name: on_stage(f"{name}, {s}")  # noqa: E731
        found = {k[1:]: c for k, c in known.items() if k[0] == name}
        scored = score_photo(clean, methods, camera_rows(), seed, draws, stage, known=found)
        cells += [c | {"scene": name} for c in scored]
        save_results(out, seed, draws, cells, partial=True)
    chosen = [c for c in cells if c["scene"] != TEST_SCENE and "held out" not in c["degradation"]]
    names = [n for n in scenes if n != TEST_SCENE]
    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    table = pick_table(chosen, Path(path).stem, sha, names, model=MODEL, suite="camera", bf16=BF16)
    write_text(out / TABLE, json.dumps(table, indent=2) + "\n")
    cells += default_cells(cells, table, net)
    save_results(out, seed, draws, cells, partial=False)
    write_report(out, cells, draws)
    validation = [c for c in cells if c["scene"] != TEST_SCENE]
    return {f"{row['degradation']}: {row['method']}": row["means"] for row in pooled(validation, MODEL)}


def write_report(out: Path, cells: list[dict], draws: int) -> None:
    """results.md: the validation scenes pooled, then coffee (the test photo) alone."""
    names = list(dict.fromkeys(c["scene"] for c in cells if c["scene"] != TEST_SCENE))
    validation = [c for c in cells if c["scene"] != TEST_SCENE]
    test = [c for c in cells if c["scene"] == TEST_SCENE]
    report = markdown(validation, names, draws, MODEL, "camera") + "\n" + markdown(test, [TEST_SCENE], draws, MODEL)
    report = report.replace("# lmppm bench: photo-pick", f"## {TEST_SCENE}, the test photo (chose nothing)")
    write_text(
        out / "results.md", report.replace(f"The validation scenes ({TEST_SCENE})", f"The test photo ({TEST_SCENE})")
    )


def default_cells(cells: list[dict], table: dict, net=None) -> list[dict]:
    """What `lmppm restore photo.jpg` gives with this model and table bundled: for each (scene, row), the
    camera model's cell where domain.photo_method picks it at that photo's estimated noise, else BM3D's
    (the pick's rule applied to the cells measured, so no photo is restored twice); the model's bf16
    cell where `lmppm restore` runs it in bf16 on `net`'s device (domain.fast_precision)."""
    from lmppm_cli.files.domain import CAMERA, fast_precision, photo_method

    by = {(c["scene"], c["degradation"], c["method"]): c for c in cells}
    fast = net is not None and fast_precision(table, net) == "bf16"
    out = []
    for c in cells:
        if c["method"] == MODEL:
            method, _ = photo_method(sum(c["estimated_noise"]) / len(c["estimated_noise"]), table, CAMERA)
            model = BF16 if fast and (c["scene"], c["degradation"], BF16) in by else MODEL
            picked = (
                by[c["scene"], c["degradation"], model] if method is None else by[c["scene"], c["degradation"], BM3D]
            )
            out.append(picked | {"method": DEFAULT, "picked": model if method is None else BM3D})
    return out
