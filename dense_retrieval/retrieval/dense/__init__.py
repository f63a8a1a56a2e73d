"""Dense nearest-neighbour retrieval (the Hummingbird protocol): patch memories and their read-out.

config.py        DenseProtocol and DenseTransforms (torch-free; the values are protocols.HUMMINGBIRD's)
patches.py       patch labels, the bounded-memory sampling, the attention read-out (pure torch)
transforms.py    memory and validation inputs (torchvision), reproducible per (seed, pass, image)
memory.py        PatchMemory: a FAISS index beside a memory-mapped soft-label store
memory_build.py  the staged, resumable memory build (shards, torchrun, --max-memory; shared retrieval/index)
"""

from ..._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DenseProtocol": ".config",
        "DenseTransforms": ".config",
        "PatchMemory": ".memory",
        "MemoryPlan": ".memory_build",
        "PatchBatch": ".memory_build",
        "build_memory": ".memory_build",
    },
)
