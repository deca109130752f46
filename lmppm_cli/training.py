"""Training behind `lmppm train`: the model configuration checked against its architecture, the data
(in memory or streamed), the method's objective from the registry, the run folder, and core/train.py's
loop over them, for one TrainRequest."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from lmppm_cli import methods
from lmppm_cli.core.config import AutoencoderConfig, DiffusionConfig, DistanceConfig, ModelConfig, check_config
from lmppm_cli.core.data import Dataset
from lmppm_cli.core.errors import LmppmError, ModelError
from lmppm_cli.core.models import ARCHITECTURES, architecture
from lmppm_cli.core.train import Progress, TrainConfig, fit
from lmppm_cli.core.train_config import DataSource, TrainRequest
from lmppm_cli.core.world import World
from lmppm_cli.files.run import RunFolder
from lmppm_cli.files.weights import load_model


def model_config(method: str, autoencoder: AutoencoderConfig, diffusion: DiffusionConfig | None = None) -> ModelConfig:
    """The configuration of a model of `method` with this autoencoder (widths None: the architecture's)
    and, for an LDM, this diffusion; checked: an option of another architecture, or a value out of
    bounds, is refused naming the option."""
    found = architecture(autoencoder.arch)
    autoencoder = dataclasses.replace(autoencoder, widths=tuple(autoencoder.widths or found.widths))
    defaults = AutoencoderConfig()
    for name in set().union(*(a.options for a in ARCHITECTURES.values())) - found.options:
        if getattr(autoencoder, name) != getattr(defaults, name):
            owners = " and ".join(a.name for a in ARCHITECTURES.values() if name in a.options)
            raise LmppmError(f"--{name.replace('_', '-')} is an option of the {owners} architecture.")
    config = ModelConfig(
        autoencoder=autoencoder,
        distance=DistanceConfig(hidden=found.distance_hidden),
        diffusion=diffusion or DiffusionConfig(),
        method=method,
    )
    try:
        check_config(config)
    except ModelError as exc:  # here the fields come from the user's options
        raise LmppmError(str(exc).replace("the model's configuration has", "the options give")) from None
    return config


def train(
    config: ModelConfig,
    data: Dataset,
    tcfg: TrainConfig,
    run_dir: str | Path,
    device: torch.device,
    resume: bool = False,
    progress: Progress | None = None,
    base=None,
    world: World = World(),
) -> dict | None:
    """Train a model of `config.method` into the folder `run_dir` (core/train.fit). `base`: the trained
    DAE an ldm is built on; the --init model (tcfg.init) is loaded here. Returns the summary (None on
    ranks other than 0 under torchrun)."""
    store = RunFolder(run_dir)
    methods.check_training(config.method, bool(tcfg.init), tcfg.freeze_init, world.size)
    start = base if methods.get(config.method).base else load_model(tcfg.init, device) if tcfg.init else None
    return fit(
        lambda: methods.objective(config, data, tcfg, device, start), data, tcfg, store, device, resume, progress, world
    )


def load_data(source: DataSource, autoencoder: AutoencoderConfig, run_dir, world: World) -> Dataset:
    """The training set at the model's channels and size: in memory, or (--stream) memory-mapped from a
    cache that rank 0 builds first."""
    from lmppm_cli.files.data import load_dataset
    from lmppm_cli.files.stream import open_stream

    ae = autoencoder
    if not source.stream:
        return load_dataset(
            source.name, ae.channels, ae.height, ae.width, source.data_dir, source.extra_photos, source.crop_sides
        )
    if not Path(source.name).is_dir():
        raise LmppmError(f"--stream trains from a folder of images; {source.name!r} is not a folder.")
    cache = Path(source.cache or Path(run_dir) / "cache")
    folder = Path(source.name)
    if world.size > 1:
        if world.main:
            open_stream(folder, ae.channels, ae.height, ae.width, cache, source.workers)
        torch.distributed.barrier()
    return open_stream(folder, ae.channels, ae.height, ae.width, cache, source.workers)


def run(
    request: TrainRequest, progress: Progress | None = None, say: Callable[[str], None] = lambda text: None
) -> dict | None:
    """`lmppm train` and `lmppm_cli.train`: check everything that can be checked before loading data,
    load it, train, and return the summary (None on torchrun's ranks other than 0, which neither write
    nor say anything)."""
    from lmppm_cli.files import shards
    from lmppm_cli.files.devices import pick_device
    from lmppm_cli.files.weights import resolve_model

    world = shards.world_from_env()
    dev = shards.rank_device(pick_device(request.run.device), world)
    config = model_config(request.method, request.autoencoder, request.diffusion)
    tcfg = request.train
    if tcfg.init:
        tcfg = dataclasses.replace(tcfg, init=str(resolve_model(tcfg.init)))
    methods.check_training(request.method, bool(tcfg.init), tcfg.freeze_init, world.size)
    base = request.run.base
    base_model = load_model(resolve_model(base), dev) if base else None
    run_dir = request.run.output
    RunFolder(run_dir)  # a folder that cannot be written is refused before the data load and any epoch
    shards.start(world, dev)
    try:
        data = load_data(request.data, config.autoencoder, run_dir, world)
        if world.main:
            ranks = f", {world.size} processes" if world.size > 1 else ""
            ae = config.autoencoder
            say(
                f"{data.name}: {len(data.train.images)} train / {len(data.val.images)} val images, {ae.channels}x{ae.height}x{ae.width}, device {dev}{ranks}"
            )  # noqa: E501
            if data.skipped:
                say(f"note: skipped {len(data.skipped)} unreadable file(s), e.g. {data.skipped[0]}")
        resume = request.run.resume
        return train(config, data, tcfg, run_dir, dev, resume, progress if world.main else None, base_model, world)
    finally:
        shards.stop()
