"""Copy a checkpoint's tensors into a freshly built module, with a `ModelError` when they do not fit."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from vsr.errors import ModelError

__all__ = ["fit_weights"]


def fit_weights(module: nn.Module, state_dict: Mapping[str, Tensor], *, name: str, architecture: str) -> None:
    """Load ``state_dict`` strictly, then put the module in inference mode (eval, no gradients).

    Tensors are copied into the module's float32 parameters whatever the checkpoint's dtype, so an
    fp16 checkpoint gives the same fp32 module as its fp32 original.
    """
    try:
        module.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        # torch lists every missing/unexpected key on its own line; keep the message to one line.
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:])
        if len(detail) > 300:
            detail = detail[:297] + "..."
        raise ModelError(
            f"checkpoint {name} looks like a {architecture} model but its tensors do not fit one ({detail}); "
            "it may be a variant vsr does not support"
        ) from exc
    module.eval().requires_grad_(False)
