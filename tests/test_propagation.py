"""Label propagation: presets, exactness of the windowed path against the dense reference, memory bound."""

from __future__ import annotations

import math
import weakref

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dense_retrieval.errors import InputError
from dense_retrieval.propagation import (
    CRW,
    DINO,
    LabelPropagator,
    MemoryFrame,
    PropagationConfig,
    count_labels,
    grid_to_labels,
    labels_to_grid,
    preset,
    propagate,
    propagate_step,
)
from dense_retrieval.propagation.reference import context_frames, dense_propagate, dense_step, window_mask

TIE = 1e-5  # score gaps below this are float ties: either choice is right


# --------------------------------------------------------------------------- presets


def test_crw_preset_pins_the_published_protocol():
    # ajabri/videowalk code/test.py + utils/arguments.py, run as in the paper's DAVIS command
    assert CRW.context == 20  # --videoLen 20
    assert CRW.topk == 10  # --topk 10
    assert CRW.temperature == 0.05  # published command; argparse default 0.07
    assert CRW.radius == 12  # --radius 12, MaskedAttention: distance < radius
    assert CRW.window == "disk"
    assert CRW.restrict_first is False  # long-term memory (frame 0) is not masked
    assert CRW.fill_with_first is True  # frames padded in front with videoLen copies of frame 0
    assert CRW.label_resize == "bilinear"  # cv2.resize of the one-hot, default INTER_LINEAR
    assert CRW.feedback == "soft"  # lbls[t + n_context] = pred
    assert CRW.normalize_prediction is False  # --norm_mask off
    assert CRW.max_offset == 11
    assert preset("crw") is CRW and preset("CRW") is CRW


def test_dino_preset_pins_the_published_protocol():
    # facebookresearch/dino eval_video_segmentation.py defaults
    assert DINO.context == 7  # --n_last_frames 7
    assert DINO.topk == 5  # --topk 5
    assert DINO.temperature == 0.1  # exp(aff / 0.1)
    assert DINO.radius == 12 and DINO.window == "square"  # --size_mask_neighborhood 12, |di|,|dj| <= 12
    assert DINO.restrict_first is True  # the mask multiplies every context frame
    assert DINO.fill_with_first is False  # queue of previous frames, no frame-0 copies
    assert DINO.label_resize == "nearest"  # PIL resize(..., 0) of the first segmentation
    assert DINO.feedback == "soft"  # que.put([feat_tar, seg]) before the argmax
    assert DINO.normalize_prediction is True  # norm_mask before the argmax
    assert DINO.max_offset == 12
    assert preset("dino") is DINO


def test_window_sizes_match_the_reference_masks():
    big = 40
    centre = (big // 2) * big + big // 2
    crw = window_mask(big, big, CRW)[centre].sum().item()
    dino = window_mask(big, big, DINO)[centre].sum().item()
    assert crw == 437  # integer offsets with sqrt(di^2 + dj^2) < 12
    assert dino == 25 * 25
    assert CRW.replace(radius=12.5).max_offset == 12 and CRW.replace(radius=0.5).max_offset == 0


@pytest.mark.parametrize(
    "change",
    [
        {"topk": 0},
        {"temperature": 0.0},
        {"temperature": -1.0},
        {"radius": 0.0},
        {"window": "circle"},
        {"context": -1},
        {"label_resize": "area"},
        {"feedback": "argmax"},
        {"tile": 0},
        {"query_chunk": 0},
    ],
)
def test_invalid_settings_are_input_errors(change):
    with pytest.raises(InputError):
        CRW.replace(**change)
    with pytest.raises(InputError):
        preset("stc")


# --------------------------------------------------------------------------- exactness


def _video(frames: int, channels: int, height: int, width: int, seed: int) -> list[torch.Tensor]:
    """Smoothly moving random features, L2-normalised: neighbours are meaningful and ties improbable."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(channels, height + frames, width + frames, generator=generator)
    out = []
    for t in range(frames):
        noise = 0.3 * torch.randn(channels, height, width, generator=generator)
        out.append(F.normalize(base[:, t : t + height, t : t + width] + noise, dim=0))
    return out


def _first_labels(num_labels: int, height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, num_labels, (max(height // 2, 1), max(width // 2, 1)), generator=generator)
    ids = F.interpolate(ids[None, None].float(), size=(height, width), mode="nearest")[0, 0].long()
    return F.one_hot(ids, num_labels).permute(2, 0, 1).float()


def _assert_same_selection(ours, dense_dots, dense_index, frames, hw, config, features, target):
    """Our top-k is a valid top-k: same sorted scores, and the same (frame, position) multiset
    wherever the dense k-th and (k+1)-th scores are not tied."""
    scores = ours.scores
    finite = dense_dots > -1e8  # CRW's masked entries are -1e10 (weight 0)
    assert torch.equal(torch.isfinite(scores), finite)
    assert torch.allclose(scores[finite], dense_dots[finite], atol=TIE, rtol=0)
    # unambiguous queries: the (k+1)-th dense candidate scores clearly lower, or is another copy of the
    # k-th one (CRW's frame-0 copies score identically)
    k = config.topk
    slot_frames, restricted = context_frames(target, config)
    _, extended_dots, extended_index = dense_step(
        features[target],
        [features[f] for f in slot_frames],
        [torch.zeros(1, *features[0].shape[1:])] * len(slot_frames),
        restricted,
        config.replace(topk=k + 1),
    )
    frame_of_slot = torch.tensor(frames)
    extended_pairs = frame_of_slot[extended_index // hw] * hw + extended_index % hw
    clear = (extended_dots[:, k - 1] - extended_dots[:, k] > TIE) | (extended_pairs[:, k - 1] == extended_pairs[:, k])
    clear |= extended_dots[:, k - 1] < -1e8  # fewer than k keys in reach: every reachable one is taken
    dense_pairs = frame_of_slot[dense_index // hw] * hw + dense_index % hw
    our_pairs = ours.frames * hw + ours.positions
    dense_sorted = torch.sort(torch.where(finite, dense_pairs, -1), dim=1).values
    our_sorted = torch.sort(torch.where(finite, our_pairs, -1), dim=1).values
    assert torch.equal(dense_sorted[clear], our_sorted[clear])
    assert clear.float().mean() > 0.9


CASES = [
    # config, style, frames, grid, labels
    (CRW, "crw", 6, (9, 13), 3),  # video shorter than the context; grid smaller than the radius
    (CRW.replace(context=3, radius=3.0, tile=4), "crw", 9, (13, 17), 2),  # context rolls over
    (CRW.replace(context=4, radius=2.5, tile=3, temperature=0.07), "crw", 8, (10, 7), 4),
    (CRW.replace(context=2, radius=4.0, tile=5, feedback="hard"), "crw", 7, (12, 11), 3),
    (CRW.replace(context=3, radius=None), "crw", 6, (8, 9), 2),  # no window at all
    (DINO, "dino", 6, (9, 13), 3),
    (DINO.replace(context=3, radius=3.0, tile=4), "dino", 9, (13, 17), 2),
    (DINO.replace(context=2, radius=1.0, tile=2, topk=12), "dino", 6, (7, 10), 1),  # fewer keys than k
    (CRW.replace(context=3, radius=1.5, tile=6, topk=7), "crw", 7, (5, 23), 2),  # windows smaller than k
]


@pytest.mark.parametrize("config,style,frames,grid,num_labels", CASES)
def test_windowed_path_matches_dense_reference(config, style, frames, grid, num_labels):
    height, width = grid
    hw = height * width
    features = _video(frames, 24, height, width, seed=frames * 100 + height)
    first = _first_labels(num_labels, height, width, seed=width)
    dense_labels, selections = dense_propagate(features, first, config, style)
    propagator = LabelPropagator(config)
    propagator.start(features[0], first)
    for target in range(1, frames):
        soft = propagator.step(features[target])
        reference = dense_labels[target]
        assert soft.shape == (num_labels, height, width)
        assert torch.allclose(soft, reference, atol=1e-5, rtol=0)
        top2 = torch.topk(reference, min(2, num_labels), dim=0).values
        decided = (top2[0] - top2[-1] > 1e-4) if num_labels > 1 else torch.ones(grid, dtype=torch.bool)
        assert torch.equal(soft.argmax(0)[decided], reference.argmax(0)[decided])
        dots, index, slot_frames = selections[target - 1]
        _assert_same_selection(propagator.last_neighbours, dots, index, slot_frames, hw, config, features, target)


@pytest.mark.parametrize("tile", [1, 2, 5, 8, 64])
def test_tile_size_changes_nothing(tile):
    features = _video(5, 16, 11, 14, seed=3)
    first = _first_labels(3, 11, 14, seed=3)
    config = CRW.replace(radius=3.0, context=2)
    reference = list(propagate(features, first, config.replace(tile=7)))
    result = list(propagate(features, first, config.replace(tile=tile)))
    for a, b in zip(result, reference, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_duplicate_first_frame_copies_count_in_the_joint_topk():
    # CRW, frame 1: all 21 slots are frame 0; a position inside the window appears 21 times, so the
    # top-10 holds only copies of the single best key -- the prediction is that key's label.
    features = _video(2, 16, 8, 8, seed=5)
    first = _first_labels(3, 8, 8, seed=5)
    propagator = LabelPropagator(CRW)
    propagator.start(features[0], first)
    soft = propagator.step(features[1])
    neighbours = propagator.last_neighbours
    assert torch.all(neighbours.frames == 0)
    assert torch.all(neighbours.positions == neighbours.positions[:, :1])
    best = (features[1].reshape(16, -1).T @ features[0].reshape(16, -1)).argmax(1)
    assert torch.equal(neighbours.positions[:, 0], best)
    assert torch.allclose(soft.reshape(3, -1), first.reshape(3, -1)[:, best], atol=1e-6)


def test_schedule_matches_crw_padding_and_dino_queue():
    assert context_frames(1, CRW) == ([0] + [0] * 20, [False] + [True] * 20)
    assert context_frames(3, CRW)[0] == [0] + [0] * 18 + [1, 2]
    assert context_frames(25, CRW)[0] == [0] + list(range(5, 25))
    assert context_frames(1, DINO) == ([0], [True])
    assert context_frames(10, DINO)[0] == [0, 3, 4, 5, 6, 7, 8, 9]
    # the propagator's neighbours only ever come from its context frames
    features = _video(12, 8, 6, 6, seed=9)
    propagator = LabelPropagator(DINO.replace(context=3))
    propagator.start(features[0], _first_labels(2, 6, 6, seed=9))
    for target in range(1, 12):
        propagator.step(features[target])
        allowed = set(context_frames(target, DINO.replace(context=3))[0])
        assert set(propagator.last_neighbours.frames.unique().tolist()) <= allowed


@pytest.mark.realdata
def test_matches_dense_reference_on_real_frames(davis_mini):
    """Real image statistics (many near-identical patches): colour patches of a DAVIS sequence."""
    from dense_retrieval.data.davis import DavisDataset

    dataset = DavisDataset(davis_mini, year="2016")
    name = dataset.sequences[0]
    sequence = dataset.sequence(name)
    features = []
    for path in sequence.frames[:4]:
        image = np.asarray(Image.open(path).convert("RGB").resize((160, 88)), dtype=np.float32) / 255.0
        patches = F.unfold(torch.from_numpy(image).permute(2, 0, 1)[None], kernel_size=4, stride=4)  # [1, 48, hw]
        features.append(F.normalize(patches[0] - patches[0].mean(0, keepdim=True), dim=0).view(48, 22, 40))
    annotation = dataset.first_frame_labels(name)
    first = labels_to_grid(annotation, 2, (22, 40))
    config = CRW.replace(radius=5.0)
    dense_labels, selections = dense_propagate(features, first, config)
    propagator = LabelPropagator(config)
    propagator.start(features[0], first)
    for target in range(1, len(features)):
        soft = propagator.step(features[target])
        assert torch.allclose(soft, dense_labels[target], atol=1e-5)
        dots = selections[target - 1][0]
        finite = dots > -1e8
        assert torch.allclose(propagator.last_neighbours.scores[finite], dots[finite], atol=TIE, rtol=0)


@pytest.mark.realdata
@pytest.mark.weights
def test_matches_dense_reference_on_mobilenet_features(davis_mini):
    """The embedded backbone's L2-normalised features of real frames, both presets, against the dense path."""
    from dense_retrieval.backbone.config import BackboneConfig, FeatureConfig
    from dense_retrieval.backbone.features import FeatureExtractor
    from dense_retrieval.backbone.networks import build_backbone
    from dense_retrieval.data.davis import DavisDataset

    dataset = DavisDataset(davis_mini, year="2016")
    name = dataset.sequences[-1]
    frames = [np.asarray(Image.open(p).convert("RGB").resize((214, 120))) for p in dataset.sequence(name).frames[:4]]
    extractor = FeatureExtractor(
        build_backbone(BackboneConfig("mobilenet_v2", "features.13", 8)), FeatureConfig(l2_normalize=True, device="cpu")
    )
    features = list(extractor.extract(frames).features)  # 4 x [96, 15, 27]
    annotation = np.asarray(Image.fromarray(dataset.first_frame_labels(name)).resize((214, 120), Image.NEAREST))
    hw = 15 * 27
    for config, style in ((CRW, "crw"), (DINO.replace(radius=4.0), "dino")):
        first = labels_to_grid(annotation, 2, (15, 27), config.label_resize)
        dense_labels, selections = dense_propagate(features, first, config, style)
        propagator = LabelPropagator(config)
        propagator.start(features[0], first)
        for target in range(1, len(features)):
            soft = propagator.step(features[target])
            assert torch.allclose(soft, dense_labels[target], atol=1e-5)
            dots, index, slot_frames = selections[target - 1]
            _assert_same_selection(propagator.last_neighbours, dots, index, slot_frames, hw, config, features, target)


# --------------------------------------------------------------------------- streaming and memory


def test_memory_holds_only_the_context():
    config = CRW.replace(context=3, radius=3.0)
    features = _video(15, 8, 6, 7, seed=2)
    propagator = LabelPropagator(config)
    propagator.start(features[0], _first_labels(2, 6, 7, seed=2))
    seen: list[weakref.ref] = []
    for target in range(1, 15):
        propagator.step(features[target])
        seen += [weakref.ref(frame) for frame in propagator._recent]  # noqa: SLF001 - white-box check
        alive = {id(ref()) for ref in seen if ref() is not None}
        assert len(alive) <= config.context  # plus the first frame: context + 1 in all
    assert propagator.frames_seen == 15


def test_propagate_yields_one_map_per_frame_and_the_first_unchanged():
    features = _video(4, 8, 5, 6, seed=4)
    first = _first_labels(2, 5, 6, seed=4)
    maps = list(propagate(iter(features), first, CRW))
    assert len(maps) == 4 and maps[0] is first
    assert all(torch.allclose(m.sum(0), torch.ones(5, 6), atol=1e-5) for m in maps)
    assert list(propagate(iter([]), first, CRW)) == []


def test_bad_inputs_raise_input_errors():
    propagator = LabelPropagator(CRW)
    with pytest.raises(InputError, match="before start"):
        propagator.step(torch.zeros(4, 3, 3))
    with pytest.raises(InputError, match="same grid"):
        propagator.start(torch.zeros(4, 3, 3), torch.zeros(2, 4, 3))
    propagator.start(torch.randn(4, 3, 3), torch.ones(1, 3, 3))
    with pytest.raises(InputError, match="do not match"):
        propagator.step(torch.randn(4, 3, 4))
    with pytest.raises(InputError, match="empty"):
        propagate_step(torch.randn(4, 3, 3), [], CRW)


def test_runs_in_float64_and_float16_free_of_nans():
    features = [f.double() for f in _video(4, 8, 7, 9, seed=6)]
    first = _first_labels(3, 7, 9, seed=6).double()
    maps = list(propagate(features, first, CRW.replace(radius=2.0)))
    assert all(m.dtype == torch.float64 and torch.isfinite(m).all() for m in maps)


# --------------------------------------------------------------------------- label maps


def test_bilinear_grid_labels_match_opencv_as_crw_calls_it():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(37, 53)).astype(np.uint8)
    labels[:10] = 2
    grid = labels_to_grid(labels, 3, (math.ceil(37 / 8), math.ceil(53 / 8)), "bilinear")
    one_hot = np.stack([labels == i for i in range(3)], axis=-1).astype(np.float32)
    expected = cv2.resize(one_hot, (grid.shape[2], grid.shape[1]), interpolation=cv2.INTER_LINEAR)
    assert np.allclose(grid.permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_nearest_grid_labels_match_pil_as_dino_calls_it():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=(64, 96)).astype(np.uint8)
    grid = labels_to_grid(labels, 4, (4, 6), "nearest")
    expected = np.asarray(Image.fromarray(labels).resize((6, 4), Image.NEAREST))
    assert np.array_equal(grid.argmax(0).numpy(), expected)
    assert torch.equal(grid.sum(0), torch.ones(4, 6))


def test_grid_to_labels_matches_opencv_upsampling_and_argmax():
    generator = torch.Generator().manual_seed(0)
    soft = torch.softmax(torch.randn(3, 6, 9, generator=generator) * 3, dim=0)
    labels = grid_to_labels(soft, (48, 72))
    expected = cv2.resize(soft.permute(1, 2, 0).numpy(), (72, 48), interpolation=cv2.INTER_LINEAR).argmax(-1)
    assert np.array_equal(labels.numpy(), expected)


def test_normalised_prediction_rescales_each_channel():
    soft = torch.zeros(2, 2, 2)
    soft[0] = 0.6
    soft[1] = torch.tensor([[0.1, 0.2], [0.3, 0.4]])  # lower everywhere, but normalised it wins at its max
    assert grid_to_labels(soft, (2, 2)).eq(0).all()
    assert grid_to_labels(soft, (2, 2), normalize=True)[1, 1] == 1


def test_label_helpers_validate_and_treat_void_as_background():
    labels = np.array([[0, 1], [255, 2]], dtype=np.uint8)
    assert count_labels(labels) == 3
    grid = labels_to_grid(labels, 3, (2, 2))
    assert grid[:, 1, 0].tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(InputError, match="0..1"):
        labels_to_grid(labels, 2, (2, 2))
    with pytest.raises(InputError, match="2-D"):
        labels_to_grid(np.zeros((2, 2, 3)), 2, (2, 2))


def test_propagate_step_accepts_an_explicit_context():
    features = _video(3, 8, 5, 5, seed=8)
    labels = _first_labels(2, 5, 5, seed=8)
    frame = MemoryFrame.from_maps(0, features[0], labels)
    soft, neighbours = propagate_step(features[1], [(frame, False), (frame, True)], PropagationConfig(topk=3))
    assert soft.shape == (2, 5, 5) and neighbours.weights.shape == (25, 3)
    assert torch.allclose(neighbours.weights.sum(1), torch.ones(25))
