"""Two real processes under torchrun (gloo, CPU) against one process with the same global batch.

What must hold (and fails if a queue or the neighbour pool were per process, or if the loss were scaled
by the world size): after several steps both ranks hold the same queues, the same pointer (advanced by the
GLOBAL batch) and the same key encoder; the queues equal those of one process that saw the whole batch,
so they hold the keys of both ranks; the gradients DDP leaves on every rank equal the single process's
gradients of its global-mean loss. Batch norm is made comparable: each rank normalises its own half
(shuffled halves for the keys), and the single process splits its batch into the same two groups
(``bn_splits=2``) with the same shuffle permutation.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from tests.conftest import PROJECT_ROOT
from tests.pretrain_helpers import TINY_RECIPE, write_photos
from tests.pretrain_worker import GLOBAL_BATCH, STEPS, WORLD, run_steps

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """torchrun with 2 processes on this machine. The rendezvous is static on 127.0.0.1 (not --standalone,
    whose c10d store advertises the host name, which need not resolve)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(WORLD),
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), *args,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[dict, dict, dict]:
    out = tmp_path_factory.mktemp("mp")
    _torchrun(str(PROJECT_ROOT / "tests" / "pretrain_worker.py"), str(out))
    ranks = [torch.load(out / f"rank{rank}.pt") for rank in range(WORLD)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank runs: the gradients' rounding depends on the thread count
    try:
        single = torch.load(run_steps(out))
    finally:
        torch.set_num_threads(threads)
    assert ranks[0]["world_size"] == WORLD and single["world_size"] == 1
    return ranks[0], ranks[1], single


def test_both_ranks_hold_one_global_queue_with_the_keys_of_both(runs):
    rank0, rank1, single = runs
    size = rank0["queue"].shape[1]
    for name in ("queue", "queue_backbone"):
        assert torch.equal(rank0[name], rank1[name]), name
        torch.testing.assert_close(rank0[name], single[name], atol=1e-4, rtol=0)
    # the pointer moved by the global batch every step (a per-rank queue would move by half of it)
    assert rank0["queue_ptr"] == rank1["queue_ptr"] == single["queue_ptr"] == STEPS * GLOBAL_BATCH % size
    # the last step's columns: rank 0's four keys, then rank 1's four, in both ranks' queues
    columns = [(rank0["queue_ptr"] - GLOBAL_BATCH + i) % size for i in range(GLOBAL_BATCH)]
    last = single["queue"][:, columns]
    torch.testing.assert_close(
        rank0["queue"][:, columns[GLOBAL_BATCH // 2 :]], last[:, GLOBAL_BATCH // 2 :], atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        rank1["queue"][:, columns[: GLOBAL_BATCH // 2]], last[:, : GLOBAL_BATCH // 2], atol=1e-4, rtol=0
    )


def test_both_ranks_hold_the_same_key_encoder(runs):
    rank0, rank1, single = runs
    for name, value in rank0["encoder_k"].items():
        assert torch.equal(value, rank1["encoder_k"][name]), name
        if value.is_floating_point() and "running" not in name:  # running statistics differ by design
            torch.testing.assert_close(value, single["encoder_k"][name], atol=1e-4, rtol=1e-4)


def test_gradients_equal_one_process_with_the_global_batch(runs):
    rank0, rank1, single = runs
    assert torch.equal(rank0["grads"], rank1["grads"])
    for step in range(STEPS):
        scale = float(single["grads"][step].abs().max())
        torch.testing.assert_close(rank0["grads"][step], single["grads"][step], atol=1e-3 * scale, rtol=0)
    # each rank's loss is the mean over its own queries; their mean is the global batch's loss
    torch.testing.assert_close((rank0["losses"] + rank1["losses"]) / 2, single["losses"], atol=1e-4, rtol=1e-4)


def test_torchrun_runs_the_pretrain_command(tmp_path):
    from dense_retrieval.backbone.weights.checkpoints import load_checkpoint

    write_photos(tmp_path / "photos", 16)
    run = tmp_path / "run"
    proc = _torchrun(
        "-m", "dense_retrieval", "pretrain", str(tmp_path / "photos"), "--out", str(run), *TINY_RECIPE,
        "--epochs", "2", "--max-steps", "3", "--workers", "0", "--json", "--queue-size", "auto", "--nn-topk", "auto",
    )  # fmt: skip
    summary = json.loads(proc.stdout)  # one JSON document: rank 0 prints, rank 1 stays silent
    assert summary["world_size"] == WORLD and summary["steps_done"] == 3 and summary["epochs_done"] == 1
    steps = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in steps if entry["event"] == "step"] == [1, 2, 3]
    record = json.loads((run / "config.json").read_text())
    assert record["bn_splits_per_process"] == 1
    # auto sizes the queue in GLOBAL batches (8 keys a step from both ranks), not in per-rank batches of 4
    assert record["sizing"]["global_batch"] == 8 and record["config"]["queue_size"] % 8 == 0
    payload = torch.load(run / "checkpoint.pth.tar", weights_only=True)
    assert payload["state_dict"]["module.queue"].shape[1] == record["config"]["queue_size"]
    assert payload["pretrain"]["world_size"] == WORLD and payload["pretrain"]["step"] == 3
    assert load_checkpoint(run / "checkpoint.pth.tar", "resnet18").checkpoint_format == "moco"
