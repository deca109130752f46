"""The registry of methods: each module of lmppm_cli/methods declares one (or a family) here, once,
with what it trains, how it restores and generates, and its default model. Everything else asks the
registry; no other module compares method names."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lmppm_cli.core.errors import LmppmError, ModelError
from lmppm_cli.core.precision import autocast
from lmppm_cli.core.restoration import Restored

Restorer = Callable[[torch.Tensor, bool], Restored]


@dataclass(frozen=True)
class Method:
    """name: as in --method; summary: one line for --help and the docs.
    model: the kind of model file it restores with (a trained method's name), None: it needs none.
    default_model: the bundled model used when no --model is given.
    restorer(model, options) -> Restorer; None: it does not restore. `options` is the method's own
    options object, of the type `options` names (FlowOverride for the flow methods, ldm.LdmOptions for
    the LDM), or None; a method with no options gets None.
    generator(model, seeds, flow: FlowOverride | None, keep_trajectory, start) -> Restored; None: it
    does not generate. The trained kinds also give objective(config, data, tcfg, device, base) (the
    loss, core/objectives.py) and container(config) (the model, empty, for loading a file).
    base: the kind of model --base must be; init/freeze_init: whether --init / --freeze-init apply;
    distributed: whether it trains under torchrun (each rank a share of every batch); picks: with no --model, each image gets the bundled model of its domain (files/domain.py)."""

    name: str
    summary: str
    model: str | None
    default_model: str | None = None
    restorer: Callable[..., Restorer] | None = None
    options: type | None = None
    generator: Callable | None = None
    objective: Callable | None = None
    container: Callable | None = None
    base: str | None = None
    init: bool = False
    freeze_init: bool = False
    distributed: bool = False
    picks: bool = False


REGISTRY: dict[str, Method] = {}
DEFAULT = "lmppm"  # --method when none is given


def register(method: Method) -> Method:
    REGISTRY[method.name] = method
    return method


def get(name: str) -> Method:
    if name not in REGISTRY:
        raise LmppmError(f"unknown method {name!r}; use {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def restoring() -> list[str]:
    """The methods `lmppm restore --method` takes."""
    return [m.name for m in REGISTRY.values() if m.restorer is not None]


def trained() -> list[str]:
    """The kinds of model `lmppm train --method` makes (and a model file can hold)."""
    return [m.name for m in REGISTRY.values() if m.objective is not None]


def default_model(method: str) -> str | None:
    """The bundled model a method uses when no --model is given (None: the method needs no model)."""
    found = get(method)
    return get(found.model).default_model if found.model else None


def build_model(config, bank_size: int = 0) -> torch.nn.Module:
    """The empty container of a saved model's method (files/weights.py fills it)."""
    if config.method not in trained():
        raise ModelError(
            f"the model's configuration has method = {config.method!r}, which is not one of {', '.join(trained())}."
        )
    container = get(config.method).container
    assert container is not None  # every trained method has one (a test checks the registry)
    return container(config, bank_size)


def objective(config, data, tcfg, device, base=None):
    """What `config.method` trains (core/objectives.py; core/train.py runs it). `base`: the loaded
    --base model (its kind checked) or --init model."""
    method = get(config.method)
    if method.objective is None:
        raise LmppmError(f"--method {config.method} is not trained; train one of {', '.join(trained())}.")
    if method.base and (base is None or base.config.method != method.base):
        raise LmppmError(
            f"an {method.name} is trained on a {method.base.upper()}'s latents: pass --base with a trained {method.base} model file."
        )
    return method.objective(config, data, tcfg, device, base)


def check_training(method: str, init: bool, freeze_init: bool, processes: int = 1) -> None:
    """The training options that only some methods take."""
    found = get(method)
    if processes > 1 and not found.distributed:
        raise LmppmError(f"--method {method} trains in one process; run it without torchrun.")
    if found.objective is None:
        raise LmppmError(f"--method {method} is not trained; train one of {', '.join(trained())}.")
    if init and not found.init:
        raise LmppmError(
            f"--init starts F and G from another model's autoencoder; it is for --method {' or '.join(m for m in trained() if get(m).init)}."
        )
    if freeze_init and not found.freeze_init:
        raise LmppmError(
            f"--freeze-init trains D alone on a fixed F and G; it is for --method {' or '.join(m for m in trained() if get(m).freeze_init)} only."
        )


def own_options(method: Method, options) -> object | None:
    """Of `options` (one options object or several), the one of the type `method` declares (its
    default when none was given); None for a method without options."""
    if method.options is None:
        return None
    given = options if isinstance(options, (tuple, list)) else (options,)
    return next((o for o in given if isinstance(o, method.options)), None) or method.options()


def restorer(model, method: str | None = None, options=(), precision: str = "fp32") -> Restorer:
    """A function (images, keep_trajectory) -> Restored for `method` (None: the model's own method).
    `options`: options objects (a FlowOverride, an LdmOptions); the method takes those of its own type
    (own_options). `precision` (fp32, bf16, fp16) is the networks' (precision.autocast). A method that
    needs no model takes `model=None`."""
    found = get(method or model.config.method)
    if found.restorer is None:
        raise ModelError(
            f"a {found.name} model cannot restore images; pick one of {', '.join(m for m in trained() if get(m).restorer)}."
        )
    if found.model is None:
        if precision != "fp32":
            raise LmppmError(
                f"--precision {precision} applies to learned models; {found.name} runs in float64/float32."
            )
        return found.restorer(None, own_options(found, options))
    if model.config.method != found.model:
        raise ModelError(f"method {found.name} needs a {found.model} model, but this is a {model.config.method} model.")
    fn = found.restorer(model, own_options(found, options))
    if precision == "fp32":
        return fn
    context = functools.partial(autocast, model.device, precision)
    context()  # an unknown precision fails here, before any file is read

    def run(x, keep=False):
        with context():
            return fn(x, keep)

    return run


def cannot_generate(config) -> str:
    """Why a model of this configuration cannot generate ('' if it can): its method has no generator, or
    its decoder leans on encoder skips, which pure noise does not have (a U-Net trained without skip
    dropout decodes a latent alone as a flat image)."""
    from lmppm_cli.core.models import architecture

    if get(config.method).generator is None:
        return f"a {config.method} model does not generate"
    ae = config.autoencoder
    if architecture(ae.arch).skips and ae.skip_dropout == 0:
        return "its U-Net was trained without --skip-dropout, so its decoder needs the encoder's skips, which noise does not have"
    return ""


def generator(model, generating: Sequence[str] = ()) -> Callable:
    """generator(model, seeds, flow, keep_trajectory, start) -> Restored of the model's method; a model
    that cannot generate (`cannot_generate`) is refused in one sentence naming `generating`, the models
    that can."""
    why = cannot_generate(model.config)
    if why:
        names = f"; these generate: {', '.join(generating)}" if generating else ""
        raise ModelError(f"this model cannot generate images: {why}{names}.")
    found = get(model.config.method).generator
    assert found is not None  # cannot_generate says why where a method has none
    return found


def plain(images: torch.Tensor) -> Restored:
    """A method's images as a Restored without flow steps or trajectory."""
    return Restored(images.float(), torch.zeros(len(images), dtype=torch.long), [])
