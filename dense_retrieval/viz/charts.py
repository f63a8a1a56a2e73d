"""Charts of results: per-sequence J&F bars, per-class IoU bars, backbones x benchmarks, a pretraining run's curves.
matplotlib figures (Agg, no screen needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter


def jf_bar_chart(per_object: Mapping[str, tuple[float, float]], title: str = "DAVIS J&F per object") -> Figure:
    """Grouped bars of J-Mean and F-Mean per object (``{"bike-packing_1": (J, F), ...}``, values in [0, 1]).

    The dashed line is the J&F-Mean over all objects, as the DAVIS global table computes it.
    """
    names = list(per_object)
    j = np.array([per_object[name][0] for name in names], dtype=float)
    f = np.array([per_object[name][1] for name in names], dtype=float)
    figure = Figure(figsize=(max(4.0, 0.55 * len(names) + 1.5), 3.2), dpi=100)
    axes = figure.subplots()
    positions = np.arange(len(names))
    axes.bar(positions - 0.2, j, width=0.4, label="J (region)", color="#4c72b0")
    axes.bar(positions + 0.2, f, width=0.4, label="F (boundary)", color="#dd8452")
    if names:
        mean = (j.mean() + f.mean()) / 2
        axes.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"J&F-Mean {mean:.3f}")
    axes.set_xticks(positions, names, rotation=45, ha="right", fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def class_iou_chart(per_class_iou: Mapping[str, float], title: str = "IoU per class") -> Figure:
    """Horizontal bars of IoU per class (values in [0, 1]; NaN = class absent, drawn as an empty row)."""
    names = list(per_class_iou)
    values = np.array([per_class_iou[name] for name in names], dtype=float)
    figure = Figure(figsize=(4.5, max(2.0, 0.28 * len(names) + 1.0)), dpi=100)
    axes = figure.subplots()
    positions = np.arange(len(names))
    axes.barh(positions, np.nan_to_num(values), color="#55a868")
    present = values[~np.isnan(values)]
    if present.size:
        axes.axvline(present.mean(), color="black", linestyle="--", linewidth=1, label=f"mean {present.mean():.3f}")
        axes.legend(fontsize=7, loc="lower right")
    axes.set_yticks(positions, names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def frame_scores_chart(
    per_object: Mapping[str, Sequence[float]],
    first_frame: int = 1,
    measure: str = "J (region IoU)",
    title: str = "Score per frame",
) -> Figure:
    """One line per object of a per-frame score (e.g. ``ObjectScores.j``), values in [0, 1].

    A line that sinks over the frames is what DAVIS's Decay measures: the propagation drifting away
    from the object.

    Args:
        per_object: ``{"blackswan_1": [J of each scored frame], ...}``.
        first_frame: the frame number of the first value (1: the semi-supervised task skips frame 0).
        measure: the y-axis label.
        title: the chart title.
    """
    figure = Figure(figsize=(6.0, 3.0), dpi=100)
    axes = figure.subplots()
    for name, values in per_object.items():
        values = np.asarray(values, dtype=float)
        axes.plot(np.arange(first_frame, first_frame + len(values)), values, marker=".", linewidth=1.2, label=name)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("frame", fontsize=8)
    axes.set_ylabel(measure, fontsize=8)
    axes.set_title(title, fontsize=10)
    if per_object:
        axes.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return figure


def training_chart(
    epochs: Sequence[Mapping[str, float]],
    evaluations: Sequence[Mapping[str, float]] = (),
    queue_size: int | None = None,
    title: str = "Pretraining",
) -> Figure:
    """A pretraining run against the epoch: losses, InfoNCE accuracy and (when scored) DAVIS J&F.

    The dotted lines are chance for a queue of ``queue_size`` keys: InfoNCE ``ln(K + 1)`` and accuracy
    ``100 / (K + 1)`` %. A run that learns stays well below the first and above the second; InfoNCE
    climbing to chance is the failure of a queue not smaller than the data.

    Args:
        epochs: the run log's epoch entries (``epoch_done``, ``loss``, ``info_nce``, ``nn_loss``, ``accuracy``).
        evaluations: its evaluation entries (``epoch_done``, ``J&F``), values in [0, 1].
        queue_size: K, for the chance lines.
        title: the chart title.
    """
    panels = 3 if evaluations else 2
    figure = Figure(figsize=(3.4 * panels, 3.0), dpi=100)
    axes = figure.subplots(1, panels)
    x = [entry["epoch_done"] for entry in epochs]
    losses, accuracy = axes[0], axes[1]
    for key, label, style in (("loss", "total", "-"), ("info_nce", "InfoNCE", "-"), ("nn_loss", "NN", "--")):
        values = [entry.get(key, np.nan) for entry in epochs]
        if np.any(np.nan_to_num(values)):
            losses.plot(x, values, style, linewidth=1.2, label=label)
    accuracy.plot(x, [entry["accuracy"] for entry in epochs], color="#55a868", linewidth=1.2)
    if queue_size:
        losses.axhline(np.log(queue_size + 1), color="grey", linestyle=":", label=f"chance (K={queue_size})")
        accuracy.axhline(100 / (queue_size + 1), color="grey", linestyle=":", label="chance")
        accuracy.legend(fontsize=7, loc="lower right")
    losses.set_title("loss", fontsize=9)
    losses.legend(fontsize=7, loc="upper right")
    accuracy.set_title("InfoNCE accuracy (%)", fontsize=9)
    accuracy.set_ylim(0, 100)
    if evaluations:
        scored = axes[2]
        scored.plot(
            [e["epoch_done"] for e in evaluations], [e["J&F"] for e in evaluations], marker="o", color="#c44e52"
        )
        scored.set_title("DAVIS J&F", fontsize=9)
        scored.set_ylim(0, 1)
    for panel in axes:
        panel.set_xlabel("epoch", fontsize=8)
        panel.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def figure_to_rgb(figure: Figure) -> np.ndarray:
    """Render a figure to uint8 [H, W, 3] (for saving with write_image or testing)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def matrix_chart(
    columns: Sequence[tuple[str, str]],
    bars: Mapping[str, Mapping[str, float | None]],
    curves: Mapping[str, Mapping[str, Sequence[tuple[int, float | None]]]] | None = None,
    title: str = "",
) -> Figure:
    """Backbones compared on benchmarks: one panel per benchmark, a bar per backbone of its headline metric.

    A cell without a number (failed, not run yet) gets no bar, only an ``x`` on the axis. Pretraining runs get a
    second row of panels: the metric against the epoch, one line per run.

    Args:
        columns: ``(benchmark, metric)`` pairs, in panel order, e.g. ``("davis", "J&F-Mean")``.
        bars: ``{benchmark: {backbone: value in [0, 1] or None}}``, backbones in bar order.
        curves: ``{benchmark: {run: [(epoch, value or None), ...]}}`` for pretraining runs (None or empty: no row).
        title: the figure's title.
    """
    curves = {name: runs for name, runs in (curves or {}).items() if runs}
    rows = 2 if curves else 1
    width = max(len(bars.get(name, {})) for name, _ in columns) if columns else 1
    figure = Figure(figsize=(max(3.6, 0.45 * width + 1.6) * max(len(columns), 1), 3.4 * rows), dpi=100)
    grid = figure.subplots(rows, max(len(columns), 1), squeeze=False)
    for index, (name, metric) in enumerate(columns):
        axes = grid[0][index]
        labels = list(bars.get(name, {}))
        values = [bars[name][label] for label in labels]
        positions = np.arange(len(labels))
        heights = [0.0 if v is None or np.isnan(v) else v for v in values]
        drawn = axes.bar(positions, heights, color="#4c72b0")
        for position, value, bar in zip(positions, values, drawn, strict=True):
            if value is None or np.isnan(value):
                axes.plot(position, 0.02, marker="x", color="#c44e52")
            else:
                axes.text(position, bar.get_height() + 0.01, f"{100 * value:.1f}", ha="center", fontsize=7)
        axes.set_xticks(positions, labels, rotation=35, ha="right", fontsize=7)
        axes.set_ylim(0, _top(values))
        axes.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        axes.set_title(f"{name}: {metric}", fontsize=9)
        if rows == 2:
            _epoch_panel(grid[1][index], name, metric, curves.get(name, {}))
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def _top(values: Sequence[float | None]) -> float:
    """The top of a panel's value axis: room above the largest value, at most a little over 100%."""
    present = [v for v in values if v is not None and not np.isnan(v)]
    return min(1.08, max(present, default=0.0) * 1.25 + 0.05)


def _epoch_panel(axes, name: str, metric: str, runs: Mapping[str, Sequence[tuple[int, float | None]]]) -> None:
    every = []
    for run, points in runs.items():
        kept = sorted((epoch, value) for epoch, value in points if value is not None and not np.isnan(value))
        every += [value for _, value in kept]
        if kept:
            axes.plot([e for e, _ in kept], [v for _, v in kept], marker="o", linewidth=1.2, label=run)
    axes.set_ylim(0, _top(every))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    axes.set_xlabel("epoch", fontsize=8)
    axes.set_ylabel(metric, fontsize=8)
    axes.set_title(f"{name}: {metric} against the epoch", fontsize=9)
    if runs:
        axes.legend(fontsize=7, loc="lower right")
