"""One cell of the matrix: a backbone on a benchmark, with its own output folder; what a runner is given.

A runner (:mod:`.registry`, the contract) receives a :class:`Cell` and builds what it needs through
:meth:`Cell.extractor`: the backbone row under the benchmark's protocol, with the spec's feature overrides.
The last extractor built is kept for the next unit of the same cell (units run ordered by backbone), and
the scheduler keeps the last weights files read (:mod:`dense_retrieval.backbone.weights.reuse`), so a row's
cells read their file once without every network of the matrix held in memory.
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

_BUILT: dict[Any, Any] = {}  # the last extractor built
_DETECTED: dict[str, str | None] = {}  # checkpoint file -> architecture


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
        record: what the runner's ``record`` returned for this cell, once planned (None while planning).
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
    record: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """``backbone x column``, for messages."""
        return f"{self.backbone.label} x {self.column}"

    def architecture(self) -> str:
        """The row's network: given in the spec, or detected in its checkpoint file."""
        if self.backbone.arch is not None:
            return self.backbone.arch
        if self.backbone.weights not in _DETECTED:
            from ..backbone.weights.checkpoints import inspect_checkpoint

            _DETECTED[self.backbone.weights] = inspect_checkpoint(self.backbone.weights).get("architecture")
        if _DETECTED[self.backbone.weights] is None:
            from ..errors import CheckpointError

            raise CheckpointError(
                f"{self.backbone.weights}: the architecture of this checkpoint cannot be told from its keys",
                hint=f'add arch = "..." to the [[backbone]] entry {self.backbone.label!r}',
            )
        return _DETECTED[self.backbone.weights]

    def extractor(self, protocol: Protocol, resize: str | None = None, **features: Any) -> FeatureExtractor:
        """The row's backbone under ``protocol``'s feature side, the column's layer/stride/preprocess overrides applied.

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
        preprocess = self.settings.get("preprocess")
        feature_config = side.features(
            resize=resize, preprocess=preprocess, device=device, batch_size=self.batch_size, **features
        )
        key = ("extractor", config, feature_config)
        if key not in _BUILT:
            _BUILT.clear()  # one network at a time in memory
            _BUILT[key] = FeatureExtractor.build(config, feature_config)
        return _BUILT[key]
