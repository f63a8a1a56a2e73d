"""The propagation kernels behind the speed: column top-k, joint windowed top-k in tile groups, reused
work buffers, the multiset top-k of frame copies, the channel argmax. Each is checked against the plain
torch operation it replaces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dense_retrieval.propagation import CRW, DINO, LabelPropagator, grid_to_labels
from dense_retrieval.propagation.affinity import Scratch, WindowedTopK, column_topk
from dense_retrieval.propagation.labels import _argmax_channels
from dense_retrieval.propagation.propagator import _multiset_topk


@pytest.mark.parametrize(
    "rows,groups,width,k",
    [(50, 28, 40, 10), (7, 60, 107, 10), (9, 13, 50, 3), (4, 1, 900, 5), (6, 12, 8, 8), (5, 28, 560, 10)],
)
def test_column_topk_equals_a_plain_topk(rows, groups, width, k):
    generator = torch.Generator().manual_seed(rows * groups + width)
    scores = torch.randn(rows, groups, width, generator=generator)
    scores[torch.rand(rows, groups, width, generator=generator) < 0.4] = float("-inf")  # masked keys
    values, index = column_topk(scores, k)
    expected = torch.topk(scores.view(rows, -1), k, dim=1).values
    assert torch.equal(values, expected)
    assert torch.equal(torch.gather(scores.view(rows, -1), 1, index), values)  # the index points at the values
    finite = torch.isfinite(values)
    assert all(len(set(row[mask].tolist())) == int(mask.sum()) for row, mask in zip(index, finite, strict=True))


def test_column_topk_with_fewer_finite_entries_than_k():
    scores = torch.full((3, 20, 40), float("-inf"))
    scores[0, 3, 7] = 0.5
    scores[1, :, 0] = torch.arange(20.0)
    values, index = column_topk(scores, 10)
    assert values[0, 0] == 0.5 and index[0, 0] == 3 * 40 + 7 and torch.isinf(values[0, 1:]).all()
    assert torch.equal(values[1], torch.arange(19.0, 9.0, -1.0))
    assert torch.isinf(values[2]).all()


def _frames(count: int, channels: int, height: int, width: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        F.normalize(torch.randn(height * width, channels, generator=generator), dim=1).contiguous()
        for _ in range(count)
    ]


@pytest.mark.parametrize("window,radius,offset", [("disk", 4.0, 3), ("square", 3.0, 3)])
def test_windowed_topk_is_the_same_in_any_tile_grouping_and_with_reused_buffers(window, radius, offset):
    height, width, channels = 13, 22, 12
    keys = _frames(5, channels, height, width, seed=1)
    query = _frames(1, channels, height, width, seed=2)[0].view(height, width, channels)
    whole = WindowedTopK(query, 7, offset, window, radius, tile=4)(keys)
    scratch = Scratch()
    WindowedTopK(query, 7, offset, window, radius, tile=4, scratch=scratch)(keys[:2])  # leaves stale buffers
    for max_scores in (1, 2 * 16 * 11 * 5 * 11, 10**9):  # one tile per product, two, a whole band
        grouped = WindowedTopK(query, 7, offset, window, radius, tile=4, scratch=scratch, max_scores=max_scores)
        for a, b in zip(grouped(keys), whole, strict=True):
            assert torch.equal(a, b)
    # against brute force: every in-window key of every frame, one top-k
    flat = torch.stack(keys)  # [F, hw, C]
    scores = torch.einsum("qc,fkc->qfk", query.reshape(-1, channels), flat)
    ii, jj = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    di = ii.flatten()[None, :] - ii.flatten()[:, None]
    dj = jj.flatten()[None, :] - jj.flatten()[:, None]
    allowed = (di.abs() <= radius) & (dj.abs() <= radius) if window == "square" else (di**2 + dj**2) < radius**2
    scores = scores.masked_fill(~allowed[:, None, :], float("-inf")).reshape(height * width, -1)
    expected = torch.topk(scores, 7, dim=1).values
    assert torch.allclose(whole[0], expected, atol=1e-6, rtol=0)
    picked = torch.gather(scores, 1, whole[1] * height * width + whole[2])
    assert torch.allclose(picked, whole[0], atol=1e-6, rtol=0)


def test_one_propagator_gives_the_same_labels_across_videos_of_different_sizes():
    def video(frames, height, width, seed):
        generator = torch.Generator().manual_seed(seed)
        base = torch.randn(16, height + frames, width + frames, generator=generator)
        return [F.normalize(base[:, t : t + height, t : t + width], dim=0) for t in range(frames)]

    first = {size: F.one_hot(torch.arange(size[0] * size[1]) % 3, 3).T.float().view(3, *size) for size in [(9, 14)]}
    first[(12, 7)] = F.one_hot(torch.arange(84) % 2, 3).T.float().view(3, 12, 7)
    config = CRW.replace(context=3, radius=3.0, tile=4)
    shared = LabelPropagator(config)
    for size, seed in (((9, 14), 1), ((12, 7), 2), ((9, 14), 3)):
        features = video(6, *size, seed)
        fresh = LabelPropagator(config)
        fresh.start(features[0], first[size])
        shared.start(features[0], first[size])
        for frame in features[1:]:
            assert torch.equal(shared.step(frame), fresh.step(frame))


@pytest.mark.parametrize("seed", range(4))
def test_multiset_topk_equals_the_expanded_candidates(seed):
    generator = torch.Generator().manual_seed(seed)
    n, c, k = 40, 14, 6
    values = torch.randn(n, c, generator=generator).round(decimals=1)  # ties on purpose
    values[:, -2:] = float("-inf")
    ids = torch.randperm(n * c, generator=generator).view(n, c)
    copies = torch.randint(1, 5, (n, c), generator=generator)
    top, top_ids = _multiset_topk(values, ids, copies, k)
    expanded = torch.repeat_interleave(values.flatten(), copies.flatten()).split(copies.sum(1).tolist())
    for row in range(n):
        assert torch.equal(top[row], torch.sort(expanded[row], descending=True).values[:k])
        # every picked id carries the value picked with it, and no id is used more often than its copies
        value_of = dict(zip(ids[row].tolist(), values[row].tolist(), strict=True))
        assert [value_of[i] for i in top_ids[row].tolist()] == pytest.approx(top[row].tolist())
        count_of = dict(zip(ids[row].tolist(), copies[row].tolist(), strict=True))
        assert all(top_ids[row].tolist().count(i) <= count_of[i] for i in set(top_ids[row].tolist()))
    plain, plain_ids = _multiset_topk(values, ids, None, k)
    assert torch.equal(plain, torch.topk(values, k, dim=1).values)


def test_multiset_topk_pads_when_the_copies_run_out():
    values = torch.tensor([[0.5, float("-inf")]])
    top, ids = _multiset_topk(values, torch.tensor([[7, 9]]), torch.tensor([[2, 1]]), 4)
    assert top[0, :2].tolist() == [0.5, 0.5] and torch.isinf(top[0, 2:]).all()
    assert ids[0, :2].tolist() == [7, 7]


@pytest.mark.parametrize("labels", [1, 2, 5])
def test_channel_argmax_keeps_ties_on_the_lowest_id(labels):
    generator = torch.Generator().manual_seed(labels)
    maps = torch.rand(labels, 24, 36, generator=generator).round(decimals=1)  # many exact ties
    assert torch.equal(_argmax_channels(maps), maps.argmax(dim=0))
    soft = torch.rand(labels, 6, 9, generator=generator)
    up = F.interpolate(soft[None], size=(24, 36), mode="bilinear", align_corners=False)[0]
    assert torch.equal(grid_to_labels(soft, (24, 36)), up.argmax(dim=0))


def test_dino_propagation_reuses_its_buffers_without_changing_labels():
    generator = torch.Generator().manual_seed(0)
    features = [F.normalize(torch.randn(8, 10, 12, generator=generator), dim=0) for _ in range(6)]
    first = F.one_hot(torch.arange(120) % 2, 2).T.float().view(2, 10, 12)
    config = DINO.replace(context=2, radius=3.0)
    propagator = LabelPropagator(config)
    runs = []
    for _ in range(2):  # the second video finds the buffers sized and filled by the first
        propagator.start(features[0], first)
        runs.append([propagator.step(f) for f in features[1:]])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
