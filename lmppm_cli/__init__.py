"""lmppm: Latent Manifold-Probabilistic Projection Models for blind image restoration.

`lmppm_cli.load(name)`, `lmppm_cli.pick(image)` and `lmppm_cli.train(request)` are the Python API
(api.py), imported on first use so that the command line starts without them."""

__version__ = "0.1.0"
__all__ = ["load", "pick", "train", "Model", "TrainRequest", "DataSource", "RunOptions"]


def __getattr__(name: str):
    if name in __all__:
        from lmppm_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'lmppm_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
