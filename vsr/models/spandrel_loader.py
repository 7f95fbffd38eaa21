"""Third-party architectures through spandrel, for checkpoints vsr's own detectors do not recognise.

spandrel (``pip install 'vsr[spandrel]'``) is the loader chaiNNer and ComfyUI use: it detects
dozens of SR and restoration architectures (SwinIR, HAT, SPAN, DAT, DnCNN, DRUNet, SCUNet, ...)
from their state dicts. vsr asks it only after its own registry (`vsr.models.registry`) found
nothing, so vsr's compact, RRDB and FFDNet models load exactly as without spandrel. The file is
still read by `vsr.models.loading.load_state_dict` (no code executed), and spandrel gets the
tensors.

What becomes of spandrel's `ModelDescriptor`:

- purpose ``SR`` -> task ``"sr"``, called ``module(x)``; ``Restoration`` (scale 1: denoisers, but
  also JPEG, deblur and 1x models) -> task ``"denoise"``, called ``module(x, sigma)`` as the
  ``--denoise`` pre-pass calls it. ``FaceSR`` (aligned face crops) and ``Inpainting`` (needs a
  mask) are refused: neither runs on video frames.
- The noise level: spandrel's DRUNet and FDnCNN (DnCNN with one input channel more than it
  outputs, as FFDNet) take it as a constant extra input channel of sigma/255, but spandrel's own
  call always passes 15/255. vsr builds that channel from the pre-pass's sigma (one per image)
  instead, as KAIR's code does. Other restoration models are blind: they take no noise level and
  ignore sigma (``noise_level=blind`` in the descriptor's hyperparameters).
- ``size_requirements.multiple_of`` -> ``size_multiple`` (the caller pads, as for vsr's own
  models). vsr's descriptor has no minimum or square size, so the module pads those itself the
  way spandrel does (reflect, then replicate) and crops the output; ``min_size`` and ``square`` are
  kept in the hyperparameters.
- ``supports_half``/``supports_bfloat16`` -> ``precisions``; scale, channels and the parameter
  count as spandrel's module has them; spandrel's tags and tiling advice go to hyperparameters.
- ``receptive_radius`` is not something spandrel knows. Its transformers (shifted windows) and
  U-Nets see far more than vsr's default tile overlap, which is capped at 32, so it is set to
  `UNKNOWN_RECEPTIVE_RADIUS` (64): tiled runs use the widest default overlap, and
  ``--tile-overlap`` gives more. FLOPs are not given either (vsr's counter sees only convs).

spandrel imports torchvision for two architectures vsr refuses anyway (LaMa inpainting and
RestoreFormer faces). PyPI's torchvision wheels need PyPI's CUDA torch, and with a CPU-only torch
``import torchvision`` fails, which would make spandrel unimportable; a stand-in for the few names
spandrel imports covers the import, then is removed from ``sys.modules``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vsr.errors import ModelError
from vsr.models.denoise import _noise_level
from vsr.models.descriptor import LoadedModel, ModelDescriptor, Precision, Task

__all__ = [
    "UNKNOWN_RECEPTIVE_RADIUS",
    "SpandrelDenoiser",
    "SpandrelSR",
    "import_spandrel",
    "load_with_spandrel",
]

log = logging.getLogger(__name__)

UNKNOWN_RECEPTIVE_RADIUS = 64
INSTALL_HINT = "pip install 'vsr[spandrel]' may load it"
_TORCHVISION_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
_REFUSED = {
    "FaceSR": "a face restoration model that needs aligned face crops, not video frames",
    "Inpainting": "an inpainting model that needs a mask",
}
_MAX_REASON = 200

CallFn = Callable[[nn.Module, Tensor], Tensor]


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Unavailable:
    """What a torchvision name is while torchvision cannot be imported: unusable, and saying why."""

    def __init__(self, name: str, reason: str) -> None:
        self._name, self._reason = name, reason

    def __getattr__(self, attr: str) -> _Unavailable:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self._name}.{attr}", self._reason)

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise ModelError(f"{self._name} is needed here but torchvision cannot be imported ({self._reason})")


class _StandInModule(types.ModuleType):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self._reason = reason

    def __getattr__(self, attr: str) -> _Unavailable:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self.__name__}.{attr}", self._reason)


@contextmanager
def _torchvision_stand_in() -> Iterator[None]:
    try:
        importlib.import_module("torchvision.transforms.functional")
    except Exception as exc:  # any failure of a third-party import means it cannot be used
        reason = _reason(exc)
    else:
        yield
        return
    log.debug(
        "torchvision cannot be imported (%s); spandrel's LaMa and RestoreFormer are unavailable", reason
    )
    stand_ins = {name: _StandInModule(name, reason) for name in _TORCHVISION_NAMES}
    saved = {name: sys.modules.get(name) for name in _TORCHVISION_NAMES}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        # a later `import torchvision` must see the real package (and its real error) again
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                if saved[name] is None:
                    del sys.modules[name]
                else:
                    sys.modules[name] = saved[name]  # type: ignore[assignment]


def import_spandrel() -> types.ModuleType | None:
    """The spandrel module, or None when it is not installed.

    A `ModelError` when it is installed but its import fails (the reason in one line).
    """
    if importlib.util.find_spec("spandrel") is None:  # also when sys.modules["spandrel"] is None
        return None
    if (module := sys.modules.get("spandrel")) is not None:
        return module
    with _torchvision_stand_in():
        try:
            return importlib.import_module("spandrel")
        except Exception as exc:  # an optional third-party import: any failure means unusable
            raise ModelError(f"spandrel is installed but cannot be imported ({_reason(exc)})") from exc


def _pad_to(x: Tensor, height: int, width: int) -> Tensor:
    """Pad bottom and right to ``height x width`` as spandrel does: reflect, then replicate."""
    h, w = x.shape[-2], x.shape[-1]
    pad_h, pad_w = height - h, width - w
    if pad_h == 0 and pad_w == 0:
        return x
    reflect_h, reflect_w = min(pad_h, h - 1), min(pad_w, w - 1)
    x = F.pad(x, (0, reflect_w, 0, reflect_h), mode="reflect")
    if pad_h > reflect_h or pad_w > reflect_w:
        x = F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode="replicate")
    return x


class _SpandrelModule(nn.Module):
    """spandrel's module (``net``) with its size requirements met by padding, output cropped back."""

    def __init__(
        self, net: nn.Module, call: CallFn, *, scale: int, minimum: int, multiple: int, square: bool
    ) -> None:
        super().__init__()
        self.net = net
        self._call = call
        self.scale = scale
        self.minimum, self.multiple, self.square = minimum, multiple, square

    def _padded(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2], x.shape[-1]
        m = self.multiple
        th, tw = (-(-max(v, self.minimum) // m) * m for v in (h, w))
        if self.square:
            th = tw = max(th, tw)
        # spandrel's architectures are written for contiguous NCHW; vsr may pass channels_last
        return _pad_to(x.contiguous(), th, tw)

    def _crop(self, y: Tensor, x: Tensor) -> Tensor:
        h, w = x.shape[-2] * self.scale, x.shape[-1] * self.scale
        return y if y.shape[-2:] == (h, w) else y[..., :h, :w]


class SpandrelSR(_SpandrelModule):
    """``forward(x)``: ``N x C x H x W`` in [0, 1] -> ``N x C x sH x sW``, as spandrel runs it; no clamping."""

    def forward(self, x: Tensor) -> Tensor:
        return self._crop(self._call(self.net, self._padded(x)), x)


class SpandrelDenoiser(_SpandrelModule):
    """``forward(x, sigma)``: the ``--denoise`` pre-pass's interface (`vsr.models.denoise.FFDNet`'s).

    With ``noise_map`` (DRUNet, FDnCNN) sigma (in [0, 1] units, a float, one per image, or a
    per-pixel ``N x 1 x H x W`` map) becomes the extra input channel; otherwise the model is blind
    and sigma is not used.
    """

    def __init__(self, net: nn.Module, call: CallFn, *, noise_map: bool, **size: Any) -> None:
        super().__init__(net, call, scale=1, **size)
        self.noise_map = noise_map

    def forward(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        padded = self._padded(x)
        if self.noise_map:
            if isinstance(sigma, Tensor) and sigma.dim() == 4 and sigma.shape[-2:] == x.shape[-2:]:
                sigma = self._padded(sigma)  # a per-pixel map, padded as the frame is
            level = torch.ones_like(padded[:, :1]) * _noise_level(sigma, padded)
            y = self.net(torch.cat([padded, level], dim=1))
        else:
            y = self._call(self.net, padded)
        return self._crop(y, x)


def _takes_noise_map(arch_id: str, net: nn.Module) -> bool:
    # spandrel hides the noise channel in its own call (input_channels excludes it); these are
    # its architectures that have one
    return arch_id == "DRUNet" or (arch_id == "DnCNN" and getattr(net, "mode", None) == "FDnCNN")


def _call_fn(model: Any) -> CallFn:
    # spandrel's descriptor call runs under inference_mode and clamps in place; its call_fn is
    # the bare forward (some architectures return a tuple or need a wrapper) that vsr wants
    call = getattr(model, "_call_fn", None)
    return call if callable(call) else (lambda net, x: net(x))


def _precisions(model: Any) -> frozenset[Precision]:
    found: set[Precision] = {"fp32"}
    if model.supports_half:
        found.add("fp16")
    if model.supports_bfloat16:
        found.add("bf16")
    return frozenset(found)


def _loaded(spandrel: types.ModuleType, model: Any, *, name: str, sha256: str | None) -> LoadedModel:
    arch_id = str(model.architecture.id)
    purpose = str(model.purpose)
    if purpose in _REFUSED or not isinstance(model, spandrel.ImageModelDescriptor):
        why = _REFUSED.get(purpose, f"a {purpose} model")
        raise ModelError(
            f"checkpoint {name} is a {arch_id} model (spandrel: {purpose}), {why}; vsr does not run it"
        )
    req = model.size_requirements
    size = {"minimum": int(req.minimum), "multiple": int(req.multiple_of), "square": bool(req.square)}
    net = model.model
    task: Task = "sr" if purpose == "SR" else "denoise"
    hyperparameters: dict[str, int | float | str] = {}
    if model.tags:
        hyperparameters["tags"] = " ".join(map(str, model.tags))
    if req.minimum:
        hyperparameters["min_size"] = int(req.minimum)
    if req.square:
        hyperparameters["square"] = "yes"
    if model.tiling != spandrel.ModelTiling.SUPPORTED:
        hyperparameters["tiling"] = model.tiling.name.lower()  # spandrel's advice: "discouraged", "internal"
    module: nn.Module
    if task == "sr":
        module = SpandrelSR(net, _call_fn(model), scale=int(model.scale), **size)
    else:
        noise_map = _takes_noise_map(arch_id, net)
        hyperparameters["noise_level"] = "input" if noise_map else "blind"
        module = SpandrelDenoiser(net, _call_fn(model), noise_map=noise_map, **size)
    hyperparameters["spandrel"] = str(spandrel.__version__)
    module.eval().requires_grad_(False)
    descriptor = ModelDescriptor(
        architecture=f"spandrel-{arch_id}",
        name=name,
        scale=int(model.scale),
        task=task,
        in_channels=int(model.input_channels),
        out_channels=int(model.output_channels),
        size_multiple=int(req.multiple_of),
        precisions=_precisions(model),
        receptive_radius=UNKNOWN_RECEPTIVE_RADIUS,
        parameters=sum(p.numel() for p in net.parameters()),
        hyperparameters=hyperparameters,
        sha256=sha256,
    )
    return LoadedModel(module=module, descriptor=descriptor)


def load_with_spandrel(
    state_dict: dict[str, Tensor], *, name: str, sha256: str | None, unrecognised: str
) -> LoadedModel:
    """Load a state dict vsr does not recognise through spandrel; `ModelError` in one line if it cannot.

    ``unrecognised`` is the start of the message saying that vsr itself does not know the
    checkpoint (file name, architectures, tensors found); the reason spandrel gives follows it.
    """
    try:
        spandrel = import_spandrel()
    except ModelError as exc:
        raise ModelError(f"{unrecognised}; {exc}") from exc
    if spandrel is None:
        raise ModelError(f"{unrecognised}; {INSTALL_HINT}")
    version = spandrel.__version__
    canonical = spandrel.canonicalize_state_dict(state_dict)
    found = next((a for a in spandrel.MAIN_REGISTRY.architectures("detection") if a.detect(canonical)), None)
    if found is None:
        raise ModelError(f"{unrecognised}; spandrel {version} does not recognise it either")
    arch_id = found.architecture.id
    try:
        model = found.architecture.load(canonical)
    except Exception as exc:  # spandrel's loaders fail in many ways on a misfit; report it, chained
        raise ModelError(
            f"checkpoint {name} looks like a {arch_id} model to spandrel {version} but it cannot load it ({_reason(exc)})"
        ) from exc
    return _loaded(spandrel, model, name=name, sha256=sha256)
