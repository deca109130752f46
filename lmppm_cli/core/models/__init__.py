"""Networks and model containers; `build_model` makes the right container for a saved config."""

from lmppm_cli.core.config import ModelConfig
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.models.autoencoder import ConvAutoencoder, build_autoencoder
from lmppm_cli.core.models.classifier import DigitClassifier
from lmppm_cli.core.models.distance import DistanceMLP
from lmppm_cli.core.models.lmppm import LMPPM, LatentDiffusion, encode_all


def build_model(config: ModelConfig, bank_size: int = 0):
    if config.method in ("lmppm", "dae"):
        return LMPPM(config, bank_size)
    if config.method == "ldm":
        return LatentDiffusion(config)
    if config.method == "classifier":
        return DigitClassifier(config)
    raise LmppmError(f"unknown model method {config.method!r}.")


__all__ = [
    "ConvAutoencoder",
    "DigitClassifier",
    "DistanceMLP",
    "LMPPM",
    "LatentDiffusion",
    "build_autoencoder",
    "build_model",
    "encode_all",
]
