"""Small scatter and trajectory plots of points in the xy-plane, drawn with PIL (the circle suite's
Figs. 4-7). Panels are side by side, each with a title; colours by value come with a colour bar."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw

from lmppm_cli.files.atomic import atomic_path

SIZE, EXTENT, BAR = 360, 1.7, 40  # panel pixels, half-width of the shown xy square, colour-bar width
# a perceptually ordered ramp (dark blue -> teal -> yellow -> red) for errors
RAMP = ((40, 30, 120), (30, 140, 140), (240, 220, 40), (200, 30, 30))


class Panel:
    def __init__(self, title: str):
        self.image = Image.new("RGB", (SIZE, SIZE + 20), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.draw.text((6, 4), title, fill="black")
        self.draw.ellipse([self.px(-1, 1), self.px(1, -1)], outline=(170, 170, 170), width=1)

    @staticmethod
    def px(x: float, y: float) -> tuple[float, float]:
        scale = SIZE / (2 * EXTENT)
        return (x + EXTENT) * scale, 20 + (EXTENT - y) * scale

    def points(self, xy: torch.Tensor, colours, radius: float = 2.0) -> None:
        colours = [colours] * len(xy) if isinstance(colours, tuple) else colours
        for (x, y), c in zip(xy.tolist(), colours):
            cx, cy = self.px(x, y)
            self.draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=c)

    def path(self, xy: torch.Tensor, colour=(150, 20, 20)) -> None:
        self.draw.line([self.px(x, y) for x, y in xy.tolist()], fill=colour, width=1)


def ramp(values: torch.Tensor, top: float) -> list[tuple[int, int, int]]:
    """Colours of values on RAMP, 0 -> first colour, `top` (and above) -> last."""
    t = (values / max(top, 1e-12)).clamp(0, 1) * (len(RAMP) - 1)
    out = []
    for v in t.tolist():
        i = min(int(v), len(RAMP) - 2)
        f = v - i
        out.append(tuple(round(a + f * (b - a)) for a, b in zip(RAMP[i], RAMP[i + 1])))
    return out


def colour_bar(top: float, label: str) -> Image.Image:
    bar = Image.new("RGB", (BAR + 50, SIZE + 20), "white")
    draw = ImageDraw.Draw(bar)
    steps = torch.linspace(top, 0, SIZE - 40)
    for i, c in enumerate(ramp(steps, top)):
        draw.line([(6, 40 + i), (6 + BAR // 2, 40 + i)], fill=c)
    draw.text((4, 4), label, fill="black")
    draw.text((8 + BAR // 2, 36), f"{top:.3f}", fill="black")
    draw.text((8 + BAR // 2, SIZE - 6), "0", fill="black")
    return bar


def save_row(images: list[Image.Image], path: Path) -> None:
    """Panels side by side, written atomically as PNG."""
    row = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)), "white")
    x = 0
    for image in images:
        row.paste(image, (x, 0))
        x += image.width
    with atomic_path(path) as tmp:
        row.save(tmp, format="PNG")
