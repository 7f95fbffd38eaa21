"""Host <-> CUDA copies through pinned memory on a copy stream of their own.

Pageable host memory makes a "non_blocking" copy synchronous (the driver stages it through a
pinned buffer of its own first); from pinned memory the copy is a DMA that runs on its own
stream while kernels run on the compute stream. Pinned blocks come from PyTorch's caching host
allocator (``torch.empty(..., pin_memory=True)``), which reuses them once the copies that read
them are done, so no buffer is pinned per frame after the first few.

Ordering follows the documented stream semantics: the compute stream waits for an upload with
``wait_stream`` before using it, the copy stream waits for the compute stream before a download,
and ``record_stream`` tells the caching allocator that a tensor made on one stream is used on
the other, so its memory is not handed out again while that stream may still read it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["HostTransfer"]


class HostTransfer:
    """Uploads stacks of numpy arrays to one CUDA device and downloads tensors from it.

    Owned by the thread that owns the device (the Restore stage); it keeps nothing per call.
    """

    def __init__(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise ValueError(f"HostTransfer is for CUDA devices, not {device}")
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def upload(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """``len(arrays) x shape`` on the device, ready for work queued later on the current stream."""
        like = torch.from_numpy(np.ascontiguousarray(arrays[0][:0]))  # dtype only, nothing copied
        host = torch.empty((len(arrays), *arrays[0].shape), dtype=like.dtype, pin_memory=True)
        np.stack(arrays, out=host.numpy())  # the one host-side copy, straight into pinned memory
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):
            on_device = host.to(self.device, non_blocking=True)
        compute.wait_stream(self.stream)
        on_device.record_stream(compute)  # made on the copy stream, used on the compute stream
        return on_device

    def download(self, tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """The tensors (computed on the current stream) as numpy arrays in pinned host memory."""
        compute = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(compute)
        hosts = []
        with torch.cuda.stream(self.stream):
            for t in tensors:
                host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                host.copy_(t, non_blocking=True)
                t.record_stream(self.stream)  # read on the copy stream, made on the compute stream
                hosts.append(host)
        done = torch.cuda.Event()
        done.record(self.stream)
        done.synchronize()  # the arrays are read by the encoder as soon as this returns
        return [h.numpy() for h in hosts]
