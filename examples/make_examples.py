"""Write the example inputs: held-out digits and a held-out photo with Gaussian noise (never training images).

    uv run python examples/make_examples.py [--out DIR]      # default: examples/

noisy_digit.png: test digit 705 (a 7) with sigma 0.7 noise; noisy_digits/: one test digit per class
with sigma 0.4 noise; noisy_photo.png: a 256x256 crop of scikit-image's coffee (held out from every
model) with sigma 0.1 noise. Seeded, so the files are the same on every run.
"""

import argparse
from pathlib import Path

import skimage.data
import torch

from lmppm_cli.core.degradations import gaussian_noise
from lmppm_cli.files.data import mnist_5k, photo_tensor
from lmppm_cli.files.images import save_image, tensor_to_image

parser = argparse.ArgumentParser(description="Write the example inputs.")
parser.add_argument("--out", default=str(Path(__file__).parent))
here = Path(parser.parse_args().out)
test = mnist_5k().test
gen = torch.Generator().manual_seed(0)
save_image(tensor_to_image(gaussian_noise(test.images[705:706], 0.7, gen)[0]), here / "noisy_digit.png")
for digit in range(10):
    idx = digit * 100 + 5
    assert test.labels[idx] == digit
    noisy = gaussian_noise(test.images[idx : idx + 1], 0.4, gen)[0]
    save_image(tensor_to_image(noisy), here / "noisy_digits" / f"digit_{digit}.png")
coffee = photo_tensor(skimage.data.coffee())[:, 60:316, 120:376]
save_image(
    tensor_to_image(gaussian_noise(coffee.unsqueeze(0), 0.1, torch.Generator().manual_seed(0))[0]),
    here / "noisy_photo.png",
)
