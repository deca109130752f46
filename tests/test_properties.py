"""Property-based tests (hypothesis, issue 13): image files round trip in every mode and bit depth, every
degradation keeps shape, range and finiteness for any input in range, and the flow stays finite on any
latent, where D's gradient vanishes, on black and white images and with a bank of one point."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from lmppm_cli.core.config import FlowConfig
from lmppm_cli.core.degradations import DEGRADATIONS, degrade
from lmppm_cli.core.flow import run_flow
from lmppm_cli.core.restoration import restore
from lmppm_cli.files.images import decode, encode

QUICK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
sides = st.integers(1, 12)

MODES = {  # mode: (numpy dtype, channels, value range)
    "L": (np.uint8, 1, 255),
    "RGB": (np.uint8, 3, 255),
    "RGBA": (np.uint8, 4, 255),
    "LA": (np.uint8, 2, 255),
    "I;16": ("<u2", 1, 65535),
    "I;16B": (">u2", 1, 65535),
    "I": (np.int32, 1, 65535),
    "F": (np.float32, 1, 1),
}


@st.composite
def images(draw):
    mode = draw(st.sampled_from(sorted(MODES)))
    dtype, channels, top = MODES[mode]
    h, w = draw(sides), draw(sides)
    shape = (h, w) if channels == 1 else (h, w, channels)
    if mode == "F":
        values = draw(arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))
    else:
        values = draw(arrays(np.int64, shape, elements=st.integers(0, top))).astype(dtype)
    return Image.frombytes(mode, (w, h), np.ascontiguousarray(values).tobytes()), mode


@QUICK
@given(images())
def test_every_mode_and_bit_depth_round_trips_exactly(case):
    img, mode = case
    x, info = decode(img)
    assert x.dtype == torch.float32 and torch.isfinite(x).all() and 0 <= x.min() and x.max() <= 1
    back = encode(x, info)
    assert back.mode == mode and back.size == img.size
    np.testing.assert_allclose(
        np.asarray(back, dtype=np.float64), np.asarray(img, dtype=np.float64), atol=1e-6 if mode == "F" else 0
    )


@QUICK
@given(st.sampled_from(sorted(DEGRADATIONS)), st.data())
def test_degradations_keep_shape_range_and_finiteness(kind, data):
    spec = DEGRADATIONS[kind]
    low, high = spec.bounds
    value = data.draw(st.floats(low, high, allow_nan=False))
    need = spec.min_size(value)
    b, c = data.draw(st.integers(1, 3)), data.draw(st.sampled_from([1, 3]))
    h, w = data.draw(st.integers(need, need + 12)), data.draw(st.integers(need, need + 12))
    x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 2**16))))
    out = degrade(x, kind, value, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


@QUICK
@given(
    st.integers(1, 6),
    st.integers(1, 5),
    st.floats(0.01, 10.0),
    st.floats(0.0, 0.6),
    st.floats(0.0, 0.39),
    st.integers(0, 2**16),
)
def test_the_flow_stays_finite_for_any_latent_and_bank(d, n, scale, alpha, beta, seed):
    g = torch.Generator().manual_seed(seed)
    bank = torch.randn(n, d, generator=g) * scale
    z = torch.randn(7, d, generator=g) * scale * 10
    flat = lambda z: z.sum(1) * 0.0  # noqa: E731  a distance whose gradient vanishes everywhere
    bowl = lambda z: (z - bank[0]).pow(2).sum(1).sqrt()  # noqa: E731
    for distance in (flat, bowl):
        result = run_flow(
            z, distance, bank, FlowConfig(alpha=alpha, beta=beta, sigma_ker=0.5, steps=4, tol=0.0, adaptive=True)
        )
        assert result.z.shape == z.shape and torch.isfinite(result.z).all()
    one = run_flow(
        z, bowl, bank[:1], FlowConfig(alpha=0.0, beta=0.5, sigma_ker=1e-3, steps=3, tol=0.0)
    )  # a bank of one point
    assert torch.isfinite(one.z).all() and (one.z - bank[0]).norm(dim=1).max() < (z - bank[0]).norm(dim=1).max() + 1e-4


def test_black_and_white_images_restore_to_finite_images_and_restoration_is_deterministic(tiny_model):
    x = torch.stack([torch.zeros(1, 12, 12), torch.ones(1, 12, 12), torch.full((1, 12, 12), 0.5)])
    first = restore(tiny_model, x).images
    assert torch.isfinite(first).all() and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, restore(tiny_model, x).images)
