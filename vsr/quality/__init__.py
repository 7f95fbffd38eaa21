"""Image quality evaluation with the standard super-resolution protocol.

>>> report = evaluate_folder("../shared/data/images/eval/Set5", "bicubic", scale=4)
>>> round(report.mean_psnr_y, 2)
28.42
"""

from vsr.quality.crops import central_crop, side_by_side, write_comparison
from vsr.quality.evaluate import BICUBIC, IMAGE_SUFFIXES, ModelUpscaler, evaluate_folder, find_images
from vsr.quality.metrics import psnr, psnr_rgb, psnr_y, rgb_to_y, shave, ssim, ssim_y
from vsr.quality.protocol import (
    ImageScores,
    bicubic_upscale,
    degrade,
    imresize,
    load_image,
    modcrop,
    score,
    to_uint8,
)
from vsr.quality.report import EvalReport, ImageResult, ReportFormat, format_report, mean_line

__all__ = [
    "BICUBIC",
    "IMAGE_SUFFIXES",
    "EvalReport",
    "ImageResult",
    "ImageScores",
    "ModelUpscaler",
    "ReportFormat",
    "bicubic_upscale",
    "central_crop",
    "degrade",
    "evaluate_folder",
    "find_images",
    "format_report",
    "imresize",
    "load_image",
    "mean_line",
    "modcrop",
    "psnr",
    "psnr_rgb",
    "psnr_y",
    "rgb_to_y",
    "score",
    "shave",
    "side_by_side",
    "ssim",
    "ssim_y",
    "to_uint8",
    "write_comparison",
]
