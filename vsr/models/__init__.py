"""Super-resolution and denoising models: architectures, detection from state dicts, and checkpoint loading.

>>> loaded = load_model("realesr-animevideov3.pth")
>>> loaded.descriptor.scale, loaded.descriptor.architecture
(4, 'compact')
"""

from vsr.models.classic import ClassicResize
from vsr.models.compact import SRVGGNetCompact
from vsr.models.denoise import FFDNet
from vsr.models.descriptor import LoadedModel, ModelDescriptor, Precision, Task
from vsr.models.loading import BUILTIN_MODELS, load_model, load_state_dict
from vsr.models.registry import ARCHITECTURES, Architecture, ArchitectureRegistry
from vsr.models.rrdb import RRDBNet

# Checkpoint architectures vsr detects, in detection order.
ARCHITECTURE_IDS: tuple[str, ...] = ARCHITECTURES.ids()

__all__ = [
    "ARCHITECTURES",
    "ARCHITECTURE_IDS",
    "BUILTIN_MODELS",
    "Architecture",
    "ArchitectureRegistry",
    "ClassicResize",
    "FFDNet",
    "LoadedModel",
    "ModelDescriptor",
    "Precision",
    "RRDBNet",
    "SRVGGNetCompact",
    "Task",
    "load_model",
    "load_state_dict",
]
