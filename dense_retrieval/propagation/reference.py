"""A plain dense label propagation, written from the CRW and DINO evaluation code's description.

Used by the tests and tools/bench_propagation.py as the reference the windowed implementation must
match (docs/architecture.md, house rule 9). It builds the full affinity between the target frame and
every context slot (copies included), adds the spatial mask (CRW: 0 / -1e10 on the short-term slots;
DINO: exp(dot / T) times a 0/1 mask on every slot), takes the top-k jointly over all slots and forms
the weighted sum of the slots' labels. Nothing here is optimised; it needs ``hw x (slots * hw)``
floats per target frame.
"""

from __future__ import annotations

import torch

from .config import PropagationConfig


def context_frames(target: int, config: PropagationConfig) -> tuple[list[int], list[bool]]:
    """Frame numbers of the context slots of ``target`` (first frame first) and whether each is windowed.

    CRW pads the video in front with ``context`` copies of frame 0 and takes the ``context`` padded
    frames before the target; DINO keeps a queue of the last ``context`` frames after the first.
    """
    n = config.context
    if config.fill_with_first:
        short = [max(0, s) for s in range(target - n, target)]
    else:
        short = list(range(max(1, target - n), target))
    return [0] + short, [config.restrict_first] + [True] * len(short)


def window_mask(height: int, width: int, config: PropagationConfig) -> torch.Tensor:
    """bool ``[hw_query, hw_key]``: the key lies in the query's window (all True when unrestricted)."""
    ii, jj = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    ii, jj = ii.flatten(), jj.flatten()
    di = ii[None, :] - ii[:, None]
    dj = jj[None, :] - jj[:, None]
    if config.radius is None:
        return torch.ones(height * width, height * width, dtype=torch.bool)
    if config.window == "square":
        return (di.abs() <= config.radius) & (dj.abs() <= config.radius)
    distance = (di * di + dj * dj).float() ** 0.5  # as CRW's MaskedAttention
    return distance < config.radius


def dense_step(
    query: torch.Tensor,
    keys: list[torch.Tensor],
    labels: list[torch.Tensor],
    restricted: list[bool],
    config: PropagationConfig,
    style: str = "crw",
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One target frame, densely.

    Args:
        query: ``[C, h, w]``.
        keys: per slot ``[C, h, w]`` (copies allowed).
        labels: per slot ``[L, h, w]``.
        restricted: per slot, whether the window applies.
        style: "crw" (additive -1e10 mask, top-k of dot/T, softmax) or "dino" (exp(dot/T) * mask,
            keep values >= the k-th largest, normalise).
        mask: ``window_mask(h, w, config)`` when already computed (CRW computes it once per size).

    Returns:
        labels ``[L, h, w]``, top-k values ``[hw, k]`` (dot products), top-k slot-major indices ``[hw, k]``
        into ``slots * hw``.
    """
    channels, height, width = query.shape
    hw, slots = height * width, len(keys)
    q = query.reshape(channels, hw).T  # [hw_q, C]
    affinity = torch.empty(hw, slots * hw)
    for s, key in enumerate(keys):
        affinity[:, s * hw : (s + 1) * hw] = q @ key.reshape(channels, hw)
    mask = window_mask(height, width, config) if mask is None else mask
    view = affinity.view(hw, slots, hw)
    k = config.topk
    if style == "crw":
        bias = torch.zeros(hw, hw)
        bias[~mask] = -1e10
        for s in range(slots):
            if restricted[s]:
                view[:, s] += bias
        affinity /= config.temperature
        top_values, top_index = torch.topk(affinity, k, dim=1)
        weights = torch.softmax(top_values, dim=1)
        dots = top_values * config.temperature
    else:
        for s in range(slots):
            view[:, s] = torch.exp(view[:, s] / config.temperature)
            if restricted[s]:
                view[:, s] *= mask
        top_values, top_index = torch.topk(affinity, k, dim=1)
        kept = torch.where(top_values >= top_values[:, -1:], top_values, torch.zeros_like(top_values))
        weights = kept / kept.sum(dim=1, keepdim=True)
        dots = torch.log(top_values) * config.temperature
    table = torch.stack([label.reshape(label.shape[0], hw) for label in labels])  # [slots, L, hw]
    table = table.permute(1, 0, 2).reshape(-1, slots * hw)  # [L, slots * hw]
    predicted = (table[:, top_index] * weights[None]).sum(dim=2)  # [L, hw]
    return predicted.reshape(-1, height, width), dots, top_index


def dense_propagate(
    features: list[torch.Tensor], first_labels: torch.Tensor, config: PropagationConfig, style: str = "crw"
) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor, list[int]]]]:
    """A whole video densely: soft labels per frame (the first is ``first_labels``) and per target the
    top-k (dot products, slot-major indices, slot frame numbers)."""
    outputs = [first_labels]
    soft = {0: first_labels}
    selections = []
    for target in range(1, len(features)):
        frames, restricted = context_frames(target, config)
        predicted, dots, index = dense_step(
            features[target], [features[f] for f in frames], [soft[f] for f in frames], restricted, config, style
        )
        if config.feedback == "hard":
            fed = torch.nn.functional.one_hot(predicted.argmax(0), predicted.shape[0]).permute(2, 0, 1).float()
        else:
            fed = predicted
        soft[target] = fed
        outputs.append(predicted)
        selections.append((dots, index, frames))
    return outputs, selections
