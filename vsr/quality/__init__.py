"""Image quality evaluation with the standard super-resolution and colour-denoising protocols.

>>> report = evaluate_folder("../shared/data/images/eval/Set5", "bicubic", scale=4)
>>> round(report.mean_psnr_y, 2)
28.42
"""

from vsr.quality.clip_degrade import ClipDegradation, h264_round_trip
from vsr.quality.clip_report import ClipReport, ClipResult, CropsInfo
from vsr.quality.crops import central_crop, crop_folder, side_by_side, write_comparison
from vsr.quality.denoising import (
    NOISY_BASELINE,
    REPORT_SIGMAS,
    ModelDenoiser,
    add_gaussian_noise,
    evaluate_denoising,
)
from vsr.quality.evaluate import (
    BICUBIC,
    IMAGE_SUFFIXES,
    ModelUpscaler,
    check_sr_model,
    evaluate_folder,
    find_images,
    folder_pairs,
    lr_input,
    named_upscaler,
)
from vsr.quality.flicker import FlickerMeter, FlickerScores, PairErrors, flicker
from vsr.quality.flicker_crops import CropsLayout, FlickerCropPicker, FlickerWindow, crops_mosaic, write_crops
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
from vsr.quality.report import (
    DenoiseReport,
    DenoiseResult,
    EvalReport,
    ImageResult,
    LrDegradation,
    ReportFormat,
    format_report,
    mean_line,
)
from vsr.quality.sharpness import gradient_ratio, mean_gradient_magnitude, phase_pattern
from vsr.quality.video import ClipConfig, clip_configs, clip_frames, evaluate_clip, frame_to_rgb

__all__ = [
    "BICUBIC",
    "IMAGE_SUFFIXES",
    "NOISY_BASELINE",
    "REPORT_SIGMAS",
    "ClipConfig",
    "ClipDegradation",
    "ClipReport",
    "ClipResult",
    "CropsInfo",
    "CropsLayout",
    "DenoiseReport",
    "DenoiseResult",
    "EvalReport",
    "FlickerCropPicker",
    "FlickerMeter",
    "FlickerScores",
    "FlickerWindow",
    "ImageResult",
    "ImageScores",
    "LrDegradation",
    "ModelDenoiser",
    "ModelUpscaler",
    "PairErrors",
    "ReportFormat",
    "add_gaussian_noise",
    "bicubic_upscale",
    "central_crop",
    "check_sr_model",
    "clip_configs",
    "clip_frames",
    "crop_folder",
    "crops_mosaic",
    "degrade",
    "evaluate_clip",
    "evaluate_denoising",
    "evaluate_folder",
    "find_images",
    "flicker",
    "folder_pairs",
    "format_report",
    "frame_to_rgb",
    "gradient_ratio",
    "h264_round_trip",
    "imresize",
    "load_image",
    "lr_input",
    "mean_gradient_magnitude",
    "mean_line",
    "modcrop",
    "named_upscaler",
    "phase_pattern",
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
    "write_crops",
]
