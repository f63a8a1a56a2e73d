"""One cell of the matrix: a backbone on a benchmark, with its own output folder; what a runner is given.

A runner (:mod:`.registry`, the contract) receives a :class:`Cell` and builds what it needs through
:meth:`Cell.extractor`: the backbone row under the benchmark's protocol, with the spec's feature overrides.
The last extractor built is kept for the next cell of the same backbone and protocol (cells run ordered by
backbone), so a row's cells share one weights load without holding every network in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..distributed import Ranks
from ..protocols import Protocol
from .registry import Benchmark
from .spec import BackboneChoice

if TYPE_CHECKING:
    from ..backbone.features import FeatureExtractor

_BUILT: dict[Any, Any] = {}


@dataclass
class Cell:
    """A backbone row on a benchmark column.

    Attributes:
        backbone: the row (label, architecture, weights).
        column: the benchmark's name in the spec (``[benchmark.NAME]``).
        benchmark: its registration.
        settings: the checked settings of the column (paths absolute, defaults filled in).
        folder: the cell's own output folder (inside the bench folder; the runner writes only here).
        device: the torch device (under torchrun: this rank's).
        batch_size: images per forward pass.
        ranks: the job's ranks (runners of split cells rarely need it: the scheduler shares the parts).
        log: one line per step, for people (stderr under ``--verbose``).
    """

    backbone: BackboneChoice
    column: str
    benchmark: Benchmark
    settings: dict[str, Any]
    folder: Path
    device: str = "auto"
    batch_size: int = 4
    ranks: Ranks = field(default_factory=Ranks)
    log: Callable[[str], None] = field(default=lambda _line: None)

    @property
    def name(self) -> str:
        """``backbone x column``, for messages."""
        return f"{self.backbone.label} x {self.column}"

    def architecture(self) -> str:
        """The row's network: given in the spec, or detected in its checkpoint file."""
        if self.backbone.arch is not None:
            return self.backbone.arch
        key = ("architecture", self.backbone.weights)
        if key not in _BUILT:
            from ..backbone.weights.checkpoints import inspect_checkpoint

            _BUILT[key] = inspect_checkpoint(self.backbone.weights).get("architecture")
        from ..errors import CheckpointError

        if _BUILT[key] is None:
            raise CheckpointError(
                f"{self.backbone.weights}: the architecture of this checkpoint cannot be told from its keys",
                hint=f'add arch = "..." to the [[backbone]] entry {self.backbone.label!r}',
            )
        return _BUILT[key]

    def extractor(self, protocol: Protocol, resize: str | None = None, **features: Any) -> FeatureExtractor:
        """The row's backbone under ``protocol``'s feature side, the column's layer/stride overrides applied.

        Args:
            protocol: the benchmark's protocol (``protocols.CRW``, ``MASKCONTRAST`` ...).
            resize: the input resize policy (None: the protocol's).
            features: other :class:`~dense_retrieval.backbone.config.FeatureConfig` fields.
        """
        from ..backbone.features import FeatureExtractor

        architecture = self.architecture()
        side = protocol.features_for(architecture)
        config = side.backbone(
            architecture,
            self.backbone.weights,
            self.settings.get("layer"),
            self.settings.get("output_stride"),
            self.settings.get("stride_mode"),
        )
        device = self.ranks.device(self.device)
        feature_config = side.features(resize=resize, device=device, batch_size=self.batch_size, **features)
        key = ("extractor", config, feature_config)
        if key not in _BUILT:
            _BUILT.clear()  # one network at a time in memory
            _BUILT[key] = FeatureExtractor.build(config, feature_config)
        return _BUILT[key]
