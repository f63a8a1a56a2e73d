"""Builders for checkpoint files in the real layouts, and a local HTTP server with Range support.

The files are small (torchvision resnet18 / mobilenet_v2 with random weights) but laid out exactly like
the published ones: MoCo (the paper's COCO checkpoints and MoCo v2 ImageNet), DINO full checkpoints,
plain torchvision state dicts and the usual wrappers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch
import torchvision


def resnet18_state(seed: int) -> dict[str, torch.Tensor]:
    """A torchvision resnet18 state dict with seeded random weights (BN statistics randomised too)."""
    torch.manual_seed(seed)
    state = torchvision.models.resnet18(weights=None).state_dict()
    for key, value in state.items():
        if key.endswith(("running_mean", "running_var")):
            value.uniform_(0.5, 1.5)
    return state


def backbone_only(state: dict[str, torch.Tensor], head: str = "fc.") -> dict[str, torch.Tensor]:
    return {key: value for key, value in state.items() if not key.startswith(head)}


def moco_checkpoint(query: dict[str, torch.Tensor], key_encoder: dict[str, torch.Tensor], arch: str) -> dict:
    """{'epoch', 'arch', 'state_dict', 'optimizer'} as MoCo's main_moco.py saves it (DDP prefixes,
    encoder_q/encoder_k with the 2-layer MLP head fc.0/fc.2, the queue, its pointer and the paper's
    queue_backbone)."""
    width = query["fc.weight"].shape[1]
    state: dict[str, torch.Tensor] = {}
    for prefix, encoder in (("module.encoder_q.", query), ("module.encoder_k.", key_encoder)):
        for key, value in backbone_only(encoder).items():
            state[prefix + key] = value.clone()
        state[prefix + "fc.0.weight"] = torch.randn(width, width)
        state[prefix + "fc.0.bias"] = torch.randn(width)
        state[prefix + "fc.2.weight"] = torch.randn(128, width)
        state[prefix + "fc.2.bias"] = torch.randn(128)
    state["module.queue"] = torch.randn(128, 256)
    state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    state["module.queue_backbone"] = torch.randn(width, 256)
    params = [name for name in state if name.startswith("module.encoder_q.")]
    optimizer = {
        "state": {i: {"momentum_buffer": torch.zeros_like(state[name])} for i, name in enumerate(params[:4])},
        "param_groups": [{"lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4, "params": list(range(len(params)))}],
    }
    return {"epoch": 800, "arch": arch, "state_dict": state, "optimizer": optimizer}


def dino_checkpoint(teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor], ddp: bool) -> dict:
    """A DINO full checkpoint: teacher/student with backbone.* (fc removed) and head.*, args, loss center."""
    prefix = "module." if ddp else ""

    def network(backbone: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state = {f"{prefix}backbone.{k}": v.clone() for k, v in backbone_only(backbone).items()}
        state[f"{prefix}head.mlp.0.weight"] = torch.randn(64, 512)
        state[f"{prefix}head.mlp.0.bias"] = torch.randn(64)
        state[f"{prefix}head.last_layer.weight_g"] = torch.ones(100, 1)
        state[f"{prefix}head.last_layer.weight_v"] = torch.randn(100, 64)
        return state

    return {
        "student": {("module." + k if not ddp else k): v for k, v in network(student).items()},
        "teacher": network(teacher),
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": []}]},
        "epoch": 100,
        "args": argparse.Namespace(arch="resnet18", out_dim=100, momentum_teacher=0.996),
        "dino_loss": {"center": torch.zeros(1, 100)},
    }


class _Evil:
    """Unpickling this runs a shell command (the classic malicious-checkpoint payload)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint whose unpickling would create ``marker`` (next to real-looking weights)."""
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _Evil(marker)}, path)
    return path


@dataclass
class FileServer:
    """A local HTTP server for one payload with optional faults; records each request's Range header."""

    payload: bytes
    url: str = ""
    cut_after: int | None = None  # close the connection after this many body bytes (once)
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    content_type: str = "application/octet-stream"
    requests: list[str | None] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)


def start_server(state: FileServer) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            if self.path != "/file":
                self.send_error(404, "Not Found")
                return
            header = self.headers.get("Range")
            state.requests.append(header)
            total = len(state.payload)
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", header or "")
            if match and not state.ignore_range:
                start = int(match.group(1))
                if start >= total:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{total}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
            else:
                self.send_response(200)
            body = state.payload[start:]
            self.send_header("Content-Type", state.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_after is not None:
                body, state.cut_after = body[: state.cut_after], None
            self.wfile.write(body)
            state.bytes_sent.append(len(body))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/file"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@contextlib.contextmanager
def serving(payload: bytes) -> Iterator[FileServer]:
    """Serve ``payload`` at ``state.url`` on 127.0.0.1 for the duration of the block."""
    state = FileServer(payload)
    http = start_server(state)
    try:
        yield state
    finally:
        http.shutdown()
        http.server_close()
