"""The U-Net with latent-to-skip projections of Appendix B (Table 9, Fig. 19), for RGB domains.

Table 9 at 120x120 RGB: encoder blocks 3->32->64->128->256 (Conv-BN-LReLU twice, MaxPool), Flatten ->
Linear -> 1024 -> LReLU; decoder Linear(1024 -> 256x7x7), blocks (ConvT x2, Cat with the skip,
Conv-BN-LReLU, Conv-BN-LReLU), Conv -> 3, Sigmoid. Generalised here to any channel count, depth
(`widths`), latent size and image size.

Appendix B's update rule: F(x) = (S_1, ..., S_k, z) and x = G(S_1 + S_hat_1(z), ..., S_k + S_hat_k(z), z),
where S_hat_i projects z onto the shape of skip i. We combine them by a learned weighted sum
a_i S_i + b_i S_hat_i(z) (a_i = b_i = 1 at the start). Within a flow step the skips are those of
F(x^n) while z moves, so the step reaches the image through the bottleneck *and* through every skip;
the next step encodes the new image again (restoration.SkipFlow).

A U-Net can route everything through its full-resolution skip and ignore z (an earlier photo model
did: replacing z by another training latent changed its output by 0.003 on average); `skip_dropout`
(training only) zeroes a sample's skips at random so that z must carry the image.

Size rule: each side must be at least 2^levels pixels; a pooling of an odd size drops the last row or
column and the decoder pads it back (replicating its edge), so any size from that minimum up works.

Beyond the paper, for photos on CPUs, two options keep the cost per pixel low:
- `unshuffle` r > 1: F starts with a pixel-unshuffle (C x H x W -> C r^2 x H/r x W/r, lossless) and G ends
  with the matching pixel-shuffle, so every convolution runs at 1/r^2 of the pixels (as FFDNet does);
- `residual`: G adds its output to the image F encoded, G(S, z) = clamp(x + head(h), 0, 1); F's skips
  then end with x itself, which the flow keeps like any skip (x^{n+1} = x^n + G's correction). A
  latent alone (generation) decodes as a correction of a mid-gray image.
And, for photo noise:
- `depth`: convolutions per encoder block and per decoder block (Table 9: 2), the ones beyond the pair
  residual (`_Residual`);
- `noise_map`: F appends FFDNet's noise-level map to its input, one channel holding the image's own
  estimated noise (core/noise_level.py, Donoho's MAD). It is computed from x inside F, so F stays a
  function of the image, training sees exactly the estimates inference sees, and the flow's re-encoding
  estimates again from x^{n+1}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as Fn
from torch import nn

from lmppm_cli.core.config import AutoencoderConfig
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.models.architectures import Autoencoder
from lmppm_cli.core.noise_level import noise_levels


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]


class _Residual(nn.Module):
    """h + Conv-BN-LReLU(h): a layer that starts near the identity, so a deeper block trains as fast as
    Table 9's pair at first (plain extra layers trained markedly slower, docs/reproduction.md)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


def _stack(cin: int, cout: int, depth: int, last: int | None = None) -> nn.Sequential:
    """Table 9's pair of Conv-BN-LReLU layers, cin -> cout -> cout (or last), with depth - 2 residual
    layers of width cout between them."""
    extra = [_Residual(cout) for _ in range(depth - 2)]
    return nn.Sequential(*_conv_bn(cin, cout), *extra, *_conv_bn(cout, cout if last is None else last))


def _sizes(size: int, levels: int) -> list[int]:
    """Spatial size before each pooling, then the bottleneck's: floor(size / 2) per level."""
    out = [size]
    for _ in range(levels):
        out.append(out[-1] // 2)
    return out


class DecoderBlock(nn.Module):
    """ConvT(Cin -> Cin, k2 s2) -> Cat([Cin, Cskip]) -> Conv-BN-LReLU(Cin + Cskip -> Cin) -> ... ->
    Conv-BN-LReLU(Cin -> Cout): `depth` layers after the concatenation (Table 9: 2)."""

    def __init__(self, cin: int, cskip: int, cout: int, depth: int = 2):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin, 2, stride=2)
        self.body = _stack(cin + cskip, cin, depth, last=cout)

    def forward(self, h: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        h = self.up(h)
        dh, dw = skip.shape[-2] - h.shape[-2], skip.shape[-1] - h.shape[-1]
        if dh or dw:  # an odd size floored by the pooling comes back here
            h = Fn.pad(h, (0, dw, 0, dh), mode="replicate")
        return self.body(torch.cat([h, skip], dim=1))


class UNetAutoencoder(Autoencoder):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        levels, r = len(cfg.widths), cfg.unshuffle
        if cfg.height % r or cfg.width % r:
            raise LmppmError(
                f"a {cfg.width}x{cfg.height} image does not divide into {r}x{r} blocks for the pixel-unshuffle."
            )
        self.hs, self.ws = _sizes(cfg.height // r, levels), _sizes(cfg.width // r, levels)
        if min(self.hs[-1], self.ws[-1]) < 1:
            side = r * 2**levels
            raise LmppmError(
                f"a {cfg.width}x{cfg.height} image is too small for a {levels}-level U-Net (each side needs at least {side} pixels)."
            )
        chans = (cfg.channels * r * r + cfg.noise_map, *cfg.widths)
        self.down = nn.ModuleList(_stack(chans[i], chans[i + 1], cfg.depth) for i in range(levels))
        self.grid = (cfg.widths[-1], self.hs[-1], self.ws[-1])  # bottleneck feature map (C, h, w)
        flat = cfg.widths[-1] * self.hs[-1] * self.ws[-1]
        self.to_latent = nn.Sequential(nn.Flatten(), nn.Linear(flat, cfg.latent_dim), nn.LeakyReLU(0.2))
        self.from_latent = nn.Linear(cfg.latent_dim, flat)
        outs = (*cfg.widths[:1], *cfg.widths[:-1])  # Table 9: the last block keeps 32 channels
        self.up = nn.ModuleList(
            DecoderBlock(cfg.widths[i], cfg.widths[i], outs[i], cfg.depth) for i in reversed(range(levels))
        )
        self.head = nn.Conv2d(cfg.widths[0], cfg.channels * r * r, 3, padding=1)
        # S_hat_i: z -> a (C_i, h, w) map at the bottleneck's grid, bilinearly resized to skip i's size
        self.projections = (
            nn.ModuleList(nn.Linear(cfg.latent_dim, w * self.hs[-1] * self.ws[-1]) for w in cfg.widths)
            if cfg.projections
            else None
        )
        self.skip_weight = nn.Parameter(torch.ones(levels))
        self.projection_weight = nn.Parameter(torch.ones(levels))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        if x.shape[-2:] != (self.cfg.height, self.cfg.width):
            raise LmppmError(
                f"this U-Net takes {self.cfg.width}x{self.cfg.height} images (width x height), not {x.shape[-1]}x{x.shape[-2]}."
            )
        skips, h = [], Fn.pixel_unshuffle(x, self.cfg.unshuffle)  # (B, C r^2, H/r, W/r)
        if self.cfg.noise_map:  # (B, C r^2 + 1, H/r, W/r): FFDNet's noise-level map, estimated from x
            level = noise_levels(x.float()).to(h.dtype).view(-1, 1, 1, 1)
            h = torch.cat([h, level.expand(-1, 1, *h.shape[-2:])], dim=1)
        for block in self.down:
            h = block(h)
            skips.append(h)  # S_i: the block's output before pooling
            h = Fn.max_pool2d(h, 2)
        if self.cfg.residual:
            skips.append(x)  # the image G corrects
        return self.to_latent(h), tuple(skips)

    def combined_skips(self, z: torch.Tensor, skips: tuple) -> list[torch.Tensor]:
        """a_i S_i + b_i S_hat_i(z) per level; no skips (a latent alone) counts as S_i = 0. In training,
        each sample loses all its S_i with probability skip_dropout."""
        out = []
        keep = None
        if skips and self.training and self.cfg.skip_dropout > 0:
            keep = (torch.rand(len(z), 1, 1, 1, device=z.device) >= self.cfg.skip_dropout).to(z.dtype)
        for i, w in enumerate(self.cfg.widths):
            shape = (len(z), w, self.hs[i], self.ws[i])
            s = self.skip_weight[i] * skips[i] if skips else torch.zeros(shape, device=z.device, dtype=z.dtype)
            s = s * keep if keep is not None else s
            if self.projections is not None:
                p = self.projections[i](z).view(len(z), w, self.hs[-1], self.ws[-1])
                s = s + self.projection_weight[i] * Fn.interpolate(
                    p, size=shape[-2:], mode="bilinear", align_corners=False
                )
            out.append(s)
        return out

    def decode(self, z: torch.Tensor, skips: tuple = ()) -> torch.Tensor:
        combined = self.combined_skips(z, skips)
        h = self.from_latent(z).view(len(z), *self.grid)
        for block, skip in zip(self.up, reversed(combined)):
            h = block(h, skip)
        out = Fn.pixel_shuffle(self.head(h), self.cfg.unshuffle)  # (B, C, H, W)
        if not self.cfg.residual:
            return torch.sigmoid(out)
        base = skips[-1] if skips else torch.full_like(out, 0.5)
        return (base + out).clamp(0.0, 1.0)
