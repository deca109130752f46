"""How far images of several kinds sit from each bundled domain model's data, by the three measures the
README's "Choosing a model" discusses: the learned distance D(F(x)), the distance from F(x) to the nearest
bank latent (in units of the bank's median nearest-neighbour spacing), and the blurred reconstruction
residual (domain.scores). Large images are scored on a grid of tiles (U-Nets) or resized (the digit model).
Every image is held out from every bundled model: a test digit and face, the photo models' test photo
(coffee) and validation photo (chelsea), a text page and uniform noise.

    uv run python examples/domain_scores.py [--quick]     # --quick: 96x96 corners of the large images
"""

import argparse

import numpy as np
import skimage.data as skd
import torch

from lmppm_cli.core.neighbours import nearest
from lmppm_cli.files.data import lfw_faces, mnist_5k, photo_tensor
from lmppm_cli.files.domain import DOMAIN_MODELS, scores, views
from lmppm_cli.files.weights import load_model, resolve_model


def gray(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).float().div(255).unsqueeze(0)


@torch.no_grad()
def bank_distance(model, x) -> float:
    """Median distance from F(views of x) to the nearest bank latent, in bank spacings."""
    own = torch.arange(len(model.bank))
    _, spacing = nearest(model.bank, model.bank, exclude=own)
    z, _ = model.autoencoder.encode(views(x, model))
    return float((nearest(z, model.bank)[1].sqrt() / spacing.sqrt().median()).median())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="score 96x96 corners of the large images")
    args = parser.parse_args()
    crop = (lambda x: x[..., :96, :96]) if args.quick else (lambda x: x)
    models = {n: load_model(resolve_model(n)) for n in DOMAIN_MODELS}
    images = {
        "test digit": mnist_5k().test.images[0],
        "test face": lfw_faces().test.images[0],
        "coffee (photo, test)": crop(photo_tensor(skd.coffee())),
        "chelsea (photo, validation)": crop(photo_tensor(skd.chelsea())),
        "text page": crop(gray(skd.text())),
        "uniform noise": crop(torch.rand(3, 256, 256, generator=torch.Generator().manual_seed(0))),
    }
    print("image | " + " | ".join(f"{n}: D / bank / residual" for n in models))
    for name, x in images.items():
        cells = []
        for m in models.values():
            s = scores(m, x)
            cells.append(f"{s.distance:.2f} / {bank_distance(m, x):.2f} / {s.residual:.3f}")
        print(f"{name} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
