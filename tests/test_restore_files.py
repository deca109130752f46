import numpy as np
import pytest
from conftest import write_png
from PIL import Image

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.generate_files import generate_files
from lmppm_cli.files.plan import OutputRules, plan_outputs, record_outputs
from lmppm_cli.files.restore_files import Progress, restore_files
from lmppm_cli.files.tiling import Restorer
from lmppm_cli.files.weights import load_model
from lmppm_cli.methods import restorer


def _img(path, size=(12, 12), mode="L"):
    arr = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    write_png(path, arr)
    if mode != "RGB":
        Image.open(path).convert(mode).save(path)


def test_plan_file_to_file_and_folder_keeps_structure(tmp_path):
    _img(tmp_path / "in" / "a.png")
    _img(tmp_path / "in" / "sub" / "b.png")
    (tmp_path / "in" / "notes.txt").write_text("skip me")
    jobs = plan_outputs([str(tmp_path / "in" / "a.png")], str(tmp_path / "out.png"))
    assert [(j.source.name, j.target) for j in jobs] == [("a.png", tmp_path / "out.png")]
    jobs = plan_outputs([str(tmp_path / "in")], str(tmp_path / "out"))
    assert sorted(str(j.target.relative_to(tmp_path / "out")) for j in jobs) == ["a.png", "sub/b.png"]


def test_plan_glob_is_relative_to_its_base(tmp_path):
    _img(tmp_path / "in" / "x" / "a.png")
    _img(tmp_path / "in" / "y" / "b.png")
    jobs = plan_outputs([str(tmp_path / "in" / "**" / "*.png")], str(tmp_path / "out"))
    assert sorted(str(j.target.relative_to(tmp_path / "out")) for j in jobs) == ["x/a.png", "y/b.png"]


def test_plan_refuses_to_overwrite_inputs_and_collisions(tmp_path):
    _img(tmp_path / "a.png")
    _img(tmp_path / "d1" / "same.png")
    _img(tmp_path / "d2" / "same.png")
    with pytest.raises(LmppmError, match="one of the inputs"):
        plan_outputs([str(tmp_path / "a.png")], str(tmp_path / "a.png"))
    with pytest.raises(LmppmError, match="one of the inputs"):
        plan_outputs([str(tmp_path / "d1")], str(tmp_path / "d1"))
    with pytest.raises(LmppmError, match="would both be written"):
        plan_outputs([str(tmp_path / "d1" / "same.png"), str(tmp_path / "d2" / "same.png")], str(tmp_path / "o"))
    with pytest.raises(LmppmError, match="names one file"):
        plan_outputs([str(tmp_path / "d1"), str(tmp_path / "d2")], str(tmp_path / "o.png"))
    with pytest.raises(LmppmError, match="does not exist"):
        plan_outputs([str(tmp_path / "nope.png")], str(tmp_path / "o"))
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(LmppmError, match="not an image"):
        plan_outputs([str(tmp_path / "a.png")], str(tmp_path / "notes.txt"))
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(LmppmError, match="matches no files"):
        plan_outputs([str(tmp_path / "*.jpg")], str(tmp_path / "o"))


def test_an_output_folder_inside_the_input_never_replaces_what_it_holds(tmp_path):
    """Files already in an output folder that lies inside an input folder are not restored as inputs, and
    none of them is replaced: it may be the user's own image, not an earlier result (issue 13)."""
    _img(tmp_path / "a.png")
    _img(tmp_path / "out" / "c.png")
    jobs = plan_outputs([str(tmp_path)], str(tmp_path / "out"))
    assert [j.source for j in jobs] == [tmp_path / "a.png"]
    _img(tmp_path / "out" / "a.png", size=(5, 5))
    with pytest.raises(LmppmError, match="lies inside an input folder and already holds"):
        plan_outputs([str(tmp_path)], str(tmp_path / "out"))
    assert Image.open(tmp_path / "out" / "a.png").size == (5, 5)


def test_trajectory_strips_never_land_on_an_input_or_another_output(tmp_path):
    _img(tmp_path / "in" / "a.png")
    _img(tmp_path / "in" / "a.trajectory.png")
    assert len(plan_outputs([str(tmp_path / "in")], str(tmp_path / "out"))) == 2
    with pytest.raises(LmppmError, match="would both be written to"):
        plan_outputs([str(tmp_path / "in")], str(tmp_path / "out"), OutputRules(trajectory=True))
    _img(tmp_path / "out" / "a.trajectory.png")  # given as an input below, where a.png's strip would go
    with pytest.raises(LmppmError, match="a.trajectory.png"):
        plan_outputs(
            [str(tmp_path / "in" / "a.png"), str(tmp_path / "out" / "a.trajectory.png")],
            str(tmp_path / "out"),
            OutputRules(trajectory=True),
        )


def test_a_glob_through_a_symlink_loop_restores_each_real_file_once(tmp_path):
    _img(tmp_path / "in" / "a.png")
    _img(tmp_path / "in" / "d" / "b.png")
    (tmp_path / "in" / "d" / "loop").symlink_to("..")
    jobs = plan_outputs([str(tmp_path / "in" / "**" / "*.png")], str(tmp_path / "out"))
    assert sorted(str(j.target.relative_to(tmp_path / "out")) for j in jobs) == ["a.png", "d/b.png"]


def test_restore_files_batches_and_reports_the_bad_file(tiny_model_file, tmp_path):
    model = load_model(tiny_model_file)
    for i in range(5):
        _img(tmp_path / "in" / f"{i}.png", size=(12 + i, 9 + 2 * i))
    (tmp_path / "in" / "bad.png").write_bytes(b"\x89PNG broken")
    jobs = plan_outputs([str(tmp_path / "in")], str(tmp_path / "out"))
    report = restore_files(Restorer.of(model, restorer(model), batch_size=2), jobs)
    assert len(report.written) == 5
    assert [p.name for p, _ in report.failed] == ["bad.png"]
    for i in range(5):
        assert Image.open(tmp_path / "out" / f"{i}.png").size == (12 + i, 9 + 2 * i)


def test_batching_does_not_change_results(tiny_model_file, tmp_path):
    model = load_model(tiny_model_file)
    for i in range(4):
        _img(tmp_path / "in" / f"{i}.png")
    for bs in (1, 4):
        jobs = plan_outputs([str(tmp_path / "in")], str(tmp_path / f"o{bs}"))
        restore_files(Restorer.of(model, restorer(model), batch_size=bs), jobs)
    for i in range(4):
        a = np.asarray(Image.open(tmp_path / "o1" / f"{i}.png"), dtype=int)
        b = np.asarray(Image.open(tmp_path / "o4" / f"{i}.png"), dtype=int)
        assert np.abs(a - b).max() <= 1  # identical up to float rounding of batched kernels


def test_generate_files_is_seeded(tiny_model_file, tmp_path):
    model = load_model(tiny_model_file)
    generate_files(model, 5, tmp_path / "a", seed=7, progression=True)
    generate_files(model, 5, tmp_path / "b", seed=7, batch_size=2)
    generate_files(model, 5, tmp_path / "c", seed=8)
    read = lambda d, i: np.asarray(Image.open(tmp_path / d / f"sample_{i:04d}.png"))  # noqa: E731
    assert all(np.array_equal(read("a", i), read("b", i)) for i in range(5))
    assert not all(np.array_equal(read("a", i), read("c", i)) for i in range(5))
    prog = Image.open(tmp_path / "a" / "progression.png")
    steps = model.config.generation.steps + 1
    assert prog.size == (steps * 14 + 2, 5 * 14 + 2)  # 12 px tiles, 2 px padding
    assert Image.open(tmp_path / "a" / "grid.png").mode == "L"


def test_outputs_get_normal_permissions(tiny_model_file, tmp_path):
    import os
    import stat

    from lmppm_cli.files.atomic import write_text
    from lmppm_cli.files.weights import save_model

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        save_model(load_model(tiny_model_file), tmp_path / "m.safetensors")  # safetensors writes 0600 itself
    finally:
        os.umask(old)
    for name in ("a.txt", "m.safetensors"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644


def test_read_ahead_keeps_order_reports_errors_in_place_and_reads_one_batch_ahead(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from lmppm_cli.files import io_pool as jobs_module

    for i in range(7):
        _img(tmp_path / "in" / f"{i}.png", size=(10 + i, 10))
    (tmp_path / "in" / "3.png").write_bytes(b"not an image")
    planned = plan_outputs([str(tmp_path / "in")], str(tmp_path / "out"))
    reads = []
    real = jobs_module.read_image
    monkeypatch.setattr(jobs_module, "read_image", lambda path: (reads.append(path), real(path))[1])
    with ThreadPoolExecutor(4) as pool:
        batches = jobs_module.read_ahead(pool, planned, 2)
        first = next(batches)
        assert len(reads) <= 4  # the first batch and the one after it, no more
        rest = [item for batch in batches for item in batch]
    got = first + rest
    assert [job.source.name for job, _ in got] == [j.source.name for j in planned]
    assert [isinstance(r, LmppmError) for _, r in got] == [j.source.name == "3.png" for j in planned]
    assert all(r[0].shape[-1] == int(job.source.stem) + 10 for job, r in got if not isinstance(r, LmppmError))


def test_pooled_writes_report_every_file_once_in_order_and_a_failed_write(tiny_model_file, tmp_path):
    model = load_model(tiny_model_file)
    for i in range(6):
        _img(tmp_path / "in" / f"{i}.png")
    jobs = plan_outputs([str(tmp_path / "in")], str(tmp_path / "out"))
    (tmp_path / "out" / "4.png").mkdir(parents=True)  # a folder where a result should go: its write fails
    done = []
    progress = Progress(on_file=lambda job: done.append(job.source.name))
    report = restore_files(Restorer.of(model, restorer(model), batch_size=4), jobs, progress=progress)
    assert [p.name for p in report.written] == ["0.png", "1.png", "2.png", "3.png", "5.png"]
    assert [p.name for p, _ in report.failed] == ["4.png"] and sorted(done) == [f"{i}.png" for i in range(6)]
    assert all((tmp_path / "out" / f"{i}.png").is_file() for i in (0, 1, 2, 3, 5))


def test_the_input_folder_as_output_is_refused_without_a_suffix_and_writes_beside_the_originals_with_one(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _img(folder / "a.png")
    with pytest.raises(LmppmError, match="would overwrite the originals"):
        plan_outputs([str(folder)], str(folder))
    jobs = plan_outputs([str(folder)], str(folder), OutputRules(suffix="_clean"))
    assert [j.target.name for j in jobs] == ["a_clean.png"] and jobs[0].target.parent == folder
    _img(folder / "a_clean.png")  # not the tool's: refused, it may be the user's own
    with pytest.raises(LmppmError, match="may be one of your images"):
        plan_outputs([str(folder)], str(folder), OutputRules(suffix="_clean"))
    record_outputs([str(folder)], str(folder), [folder / "a_clean.png"])  # the tool's earlier result
    assert [j.source.name for j in plan_outputs([str(folder)], str(folder), OutputRules(suffix="_clean"))] == ["a.png"]
