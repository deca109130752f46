"""The layering of the package: the core stands alone, and method names live only in the registry."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lmppm_cli"


def test_the_core_loads_no_file_layer_experiments_cli_typer_or_rich():
    """Every module of lmppm_cli.core, imported in a fresh process, pulls in nothing from files/,
    experiments/, methods/, the CLI, typer or rich."""
    code = (
        "import importlib, pkgutil, sys\nimport lmppm_cli.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'lmppm_cli.core.'):\n    importlib.import_module(m.name)\n"
        "outside = ('lmppm_cli.files', 'lmppm_cli.experiments', 'lmppm_cli.methods', 'lmppm_cli.cli', 'lmppm_cli.api', 'typer', 'rich')\n"
        "print(len([m for m in sys.modules if m.startswith('lmppm_cli.core.')]), sorted(m for m in sys.modules if m.startswith(outside)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded, outside = done.stdout.split(" ", 1)
    assert int(loaded) >= 20 and outside.strip() == "[]", done.stdout


def test_no_method_or_architecture_name_is_compared_outside_the_registries():
    """`method == "dae"`, `arch != "unet"`, `method in ("lmppm", "dae")` and the like appear only in
    lmppm_cli/methods/ and core/models/architectures.py."""
    names = "lmppm|dae|ldm|classifier|ablation-lmppm|ablation-dae|bm3d|nlmeans|wavelet|conv|unet"
    compared = re.compile(rf"""(==|!=|\bin|\bnot in)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    found = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("methods/") or rel == "core/models/architectures.py":
            continue
        found += [
            f"{rel}:{i}: {line.strip()}"
            for i, line in enumerate(path.read_text().splitlines(), 1)
            if compared.search(line)
        ]
    assert not found, "\n".join(found)


def test_a_new_method_is_one_registered_module(tmp_path):
    """Registering a Method makes it a --method choice of `lmppm restore` with no other change."""
    from lmppm_cli import methods
    from lmppm_cli.methods.registry import REGISTRY, Method, plain, register

    register(
        Method(
            "identity",
            "returns the input",
            model=None,
            restorer=lambda model, options: lambda x, keep=False: plain(x),
        )
    )
    try:
        assert "identity" in methods.restoring()
        import torch

        x = torch.rand(2, 1, 8, 8)
        assert torch.equal(methods.restorer(None, "identity")(x, False).images, x)
    finally:
        REGISTRY.pop("identity")


def _restoring():
    from lmppm_cli import methods

    return methods.restoring()


@pytest.mark.parametrize("name", _restoring())
def test_every_registered_method_restores_a_file_through_the_cli(name, tiny_bundle, tmp_path):
    """Each restoring method of the registry, by its name on the command line, with a model of the
    kind it needs (none for the classical ones): one output of the input's size."""
    from conftest import blob_images, write_png
    from PIL import Image
    from typer.testing import CliRunner

    from lmppm_cli import methods
    from lmppm_cli.cli import app

    src = tmp_path / "in.png"
    write_png(src, (blob_images(1, seed=9)[0, 0].numpy() * 255).astype(np.uint8))
    needs = methods.get(name).model
    model = ["-m", str(tiny_bundle[needs])] if needs else []
    res = CliRunner().invoke(
        app, ["restore", str(src), "-o", str(tmp_path / "out.png"), "--method", name, *model, "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "out.png").size == Image.open(src).size


def test_the_tree_is_clean_under_ruff():
    """`ruff check` and `ruff format --check` (configured in pyproject.toml) pass on the repository."""
    root = PACKAGE.parent
    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=root, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_lmppm_methods_lists_every_registered_method_with_its_model():
    from typer.testing import CliRunner

    from lmppm_cli import methods
    from lmppm_cli.cli import app

    res = CliRunner().invoke(app, ["methods"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    rows = {line.split(":")[0]: line for line in res.output.splitlines() if line and not line.startswith(" ")}
    assert set(methods.REGISTRY) <= set(rows)
    assert "mnist-dae" in rows["dae"] and "needs no model" in rows["bm3d"] and "mnist-ldm" in rows["ldm"]
