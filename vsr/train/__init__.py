"""Training vsr's own super-resolution models and denoisers from TOML recipes (``configs/train/``).

>>> recipe = load_recipe("configs/train/fast-x2.toml")
>>> trainer = Trainer(recipe, "runs/fast-x2", resume=True)
>>> result = trainer.run(max_minutes=25)
>>> trainer.export("fast-x2.safetensors")
"""

from vsr.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from vsr.train.data import AUGMENTATIONS, PatchDataset, dihedral, find_training_images, load_image_bank
from vsr.train.degradations import DEGRADATIONS, BicubicDegradation, Degradation, make_degradation
from vsr.train.denoise import (
    NOISE_MODELS,
    DenoiseValidationSet,
    GaussianNoise,
    NoisyPatchDataset,
    make_noise,
)
from vsr.train.export import REQUIRED_METADATA, export_run, export_weights, read_weights_metadata
from vsr.train.flops import conv_flops, conv_flops_per_pixel, parameter_count
from vsr.train.gan import (
    ADVERSARIAL_LOSSES,
    UNetDiscriminatorSN,
    hinge_d_loss,
    hinge_g_loss,
    ragan_d_loss,
    ragan_g_loss,
)
from vsr.train.gan_step import GanStage
from vsr.train.loop import LOG_NAME, StopReason, Trainer, TrainResult, resolve_training_precision
from vsr.train.losses import (
    LOSSES,
    charbonnier_loss,
    gradient_loss,
    l1_loss,
    make_loss,
    phase_loss,
    ssim_loss,
)
from vsr.train.models import build_model
from vsr.train.optim import EMA, LRFactor, build_optimizer, build_scheduler
from vsr.train.realistic import RealisticDegradation, RealisticParams, degrade_realistic
from vsr.train.recipe import (
    DataSpec,
    GanSpec,
    ModelSpec,
    OptimizerSpec,
    Recipe,
    ScheduleSpec,
    load_recipe,
    recipe_from_dict,
)

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AUGMENTATIONS",
    "CHECKPOINT_NAME",
    "DEGRADATIONS",
    "EMA",
    "LOG_NAME",
    "LOSSES",
    "NOISE_MODELS",
    "REQUIRED_METADATA",
    "BicubicDegradation",
    "DataSpec",
    "Degradation",
    "DenoiseValidationSet",
    "GanSpec",
    "GanStage",
    "GaussianNoise",
    "LRFactor",
    "ModelSpec",
    "NoisyPatchDataset",
    "OptimizerSpec",
    "PatchDataset",
    "RealisticDegradation",
    "RealisticParams",
    "Recipe",
    "ScheduleSpec",
    "StopReason",
    "TrainResult",
    "Trainer",
    "UNetDiscriminatorSN",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "charbonnier_loss",
    "conv_flops",
    "conv_flops_per_pixel",
    "degrade_realistic",
    "dihedral",
    "export_run",
    "export_weights",
    "find_training_images",
    "gradient_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "l1_loss",
    "load_checkpoint",
    "load_image_bank",
    "load_recipe",
    "make_degradation",
    "make_loss",
    "make_noise",
    "parameter_count",
    "phase_loss",
    "ragan_d_loss",
    "ragan_g_loss",
    "read_weights_metadata",
    "recipe_from_dict",
    "resolve_training_precision",
    "save_checkpoint",
    "ssim_loss",
]
