"""A CNN backbone on the CPU through oneDNN Graph: the same features, about twice as fast.

In eager mode a small-batch, single-threaded 1x1 convolution goes to torch's own im2col + BLAS path, and
each convolution, bias, clamp and residual add is a separate pass over memory. Traced and frozen with
oneDNN Graph fusion (``torch.jit.enable_onednn_fusion``), the network runs as fused oneDNN partitions
(convolution + bias + ReLU6 + add): on the development CPU the default backbone of ``davis propagate``
(MobileNetV2 features.13 at stride 8, 854x480 frames) takes 0.09 instead of 0.19-0.21 CPU seconds per
frame at one thread, with features within 4e-6 of eager ones (``python tools/bench_feature_variants.py``,
benchmarks/bench_feature_variants.json; there too: ``torch.jit.freeze`` alone 1.05x, ``torch.compile``
1.2x after 3 s of compiling). The trace is made at the first call (about 2 s) and holds for other input
sizes (torch specialises it again, a fraction of a second). Vision transformers are not traced: their
position table depends on the input size in Python. Any failure to trace leaves the eager network.

TorchScript's profiling executor runs a new input shape unfused first and fused from its second run on; at one
thread the two differ by float rounding (~1e-11). So that an image's features never depend on what the process
computed before (torchrun ranks see other images than one process does), every new shape is run twice before
its result is used: two extra forwards per shape. That pays where shapes repeat (the frames of a video), not on
a collection of photos of every size, so the extractor runs this way only when asked
(:meth:`~dense_retrieval.backbone.features.FeatureExtractor.fuse_for_video`).
"""

from __future__ import annotations

import logging
import threading
import warnings

import torch
from torch import nn

log = logging.getLogger(__name__)


class GraphNetwork:
    """Calls ``network`` through a oneDNN Graph trace made at the first call (eager when that fails).

    Args:
        network: a CNN in eval mode, inference only (no autograd), on the CPU, float32.
    """

    def __init__(self, network: nn.Module):
        self.network = network
        self._traced: torch.jit.ScriptModule | None = None
        self._failed = False
        self._warm_shapes: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """``network(batch)``: float32 ``[N, 3, H, W]`` -> ``[N, C, h, w]``."""
        shape = tuple(batch.shape)
        if shape not in self._warm_shapes and not self._failed:
            with self._lock:
                if self._traced is None and not self._failed:
                    self._traced = self._trace(batch)
                elif self._traced is not None and shape not in self._warm_shapes:
                    self._traced(batch)  # a new shape: its first run is unfused, the second fused
                    self._traced(batch)
                if self._traced is not None:
                    self._warm_shapes.add(shape)
        return (self._traced or self.network)(batch)

    def _trace(self, batch: torch.Tensor) -> torch.jit.ScriptModule | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TorchScript's deprecation notices
                torch.jit.enable_onednn_fusion(True)
                traced = torch.jit.freeze(torch.jit.trace(self.network.eval(), batch, check_trace=False))
                traced(batch)  # the profiling executor fuses on the second run
                traced(batch)
            return traced
        except Exception as error:  # noqa: BLE001 - any tracing problem: the eager network does the work
            log.info("oneDNN Graph trace failed (%s); running the network eagerly", error)
            self._failed = True
            return None


def graph_applies(network: nn.Module, device: torch.device, autocast: bool) -> bool:
    """Whether :class:`GraphNetwork` should run ``network``: a CNN, on the CPU, float32, no autocast."""
    from .vit import ViTBody

    body = getattr(network, "body", network)
    floats = all(parameter.dtype == torch.float32 for parameter in network.parameters())
    return device.type == "cpu" and not autocast and floats and not isinstance(body, ViTBody)
