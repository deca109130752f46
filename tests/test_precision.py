"""Mixed precision and the top-k kernel mean in real restorations (issue 14)."""

import math

import pytest
import torch
from typer.testing import CliRunner

import lmppm_cli
from lmppm_cli.cli import app
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.precision import autocast
from lmppm_cli.core.restoration import everywhere, restore
from lmppm_cli.files.data import lfw_faces, mnist_5k


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float((a - b).pow(2).mean()))


@pytest.mark.parametrize("name", ["mnist", "faces"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_restoration_matches_fp32(name, dtype):
    """The bundled conv (mnist) and U-Net (faces) models under autocast give the fp32 images to within
    40 dB PSNR on noisy real images. Run on CPU's autocast here: the product allows it on GPUs only (it
    does not pay on CPU), but the code path (half networks, fp32 latents and kernel mean) is the same."""
    net = lmppm_cli.load(name, device="cpu").net
    ae = net.config.autoencoder
    data = (mnist_5k() if name == "mnist" else lfw_faces()).test.images[:32]
    x = (data + 0.3 * torch.randn(data.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert x.shape[1:] == (ae.channels, ae.height, ae.width)
    exact = restore(net, x).images
    with torch.autocast("cpu", dtype=dtype):
        half = restore(net, x)
    assert half.images.dtype == torch.float32
    assert psnr(half.images, exact) > 40.0
    assert psnr(half.images, exact) > psnr(x, exact) + 10.0


def test_half_precision_is_refused_on_cpu_with_one_sentence(tmp_path, monkeypatch):
    """On a CPU without native bf16 (the flags are hidden here), bf16 and fp16 are refused up front."""
    import lmppm_cli.core.precision as precision

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with pytest.raises(LmppmError, match="needs a GPU"):
        autocast(torch.device("cpu"), "bf16")
    with pytest.raises(LmppmError, match="unknown precision"):
        autocast(torch.device("cpu"), "fp8")
    result = CliRunner().invoke(
        app,
        [
            "restore",
            "examples/noisy_digit.png",
            "-o",
            str(tmp_path / "x.png"),
            "--device",
            "cpu",
            "--precision",
            "bf16",
        ],
    )
    assert result.exit_code == 2 and "needs a GPU" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "x.png").exists()
    gen = CliRunner().invoke(
        app, ["generate", "--n", "2", "-o", str(tmp_path / "g"), "--device", "cpu", "--precision", "fp16"]
    )
    assert gen.exit_code == 2 and "needs a GPU" in gen.stderr and not (tmp_path / "g").exists()


def test_top_k_flow_equals_the_exact_flow_when_k_covers_the_bank_and_stays_close_below():
    net = lmppm_cli.load("mnist", device="cpu").net
    x = mnist_5k().test.images[:16]
    x = (x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    flow = net.config.flow
    exact = restore(net, x, flow).images
    full = restore(net, x, everywhere(flow, top_k=net.bank.shape[0])).images  # every band of the blind rule
    torch.testing.assert_close(full, exact, atol=1e-5, rtol=0)
    near = restore(net, x, everywhere(flow, top_k=64)).images
    assert psnr(near, exact) > 40.0


def test_bf16_runs_on_a_cpu_with_native_bf16_and_fp16_stays_refused_there(monkeypatch):
    """With AMX / AVX-512 BF16 flags, CPU autocast in bf16 is allowed (issue 20) and gives the fp32
    restoration to within 35 dB; fp16 is still refused on any CPU."""
    import lmppm_cli.core.precision as precision

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    net = lmppm_cli.load("faces", device="cpu").net
    x = (
        lfw_faces().test.images[:8] + 0.2 * torch.randn(8, 1, 25, 25, generator=torch.Generator().manual_seed(0))
    ).clamp(0, 1)
    exact = restore(net, x).images
    with autocast(torch.device("cpu"), "bf16"):
        half = restore(net, x).images
    assert half.dtype == torch.float32 and psnr(half, exact) > 35.0
    with pytest.raises(LmppmError, match="needs a GPU"):
        autocast(torch.device("cpu"), "fp16")


def test_cpu_bf16_is_read_from_the_cpu_flags(monkeypatch, tmp_path):
    import builtins

    import lmppm_cli.core.precision as precision

    real_open = builtins.open
    for flags, expected in (("fpu sse2 avx512f", False), ("fpu avx512_bf16 amx_tile", True), ("fpu amx_bf16", True)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor : 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(
            builtins,
            "open",
            lambda path, *a, info=info, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k),
        )
        assert precision.cpu_has_bf16() is expected
