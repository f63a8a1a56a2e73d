"""Choose a FAISS factory from the number of vectors, their dimension and a memory budget (``--max-memory``).

The rule (docs/scaling.md has the figures it rests on; autofaiss's choices were the reference):

1. ``Flat`` (exact inner product) while ``4 * N * d`` bytes fit the budget.
2. Otherwise an inverted file with ``nlist = 2 ** round(log2(4 * sqrt(N)))`` lists (autofaiss's lower
   end of FAISS's 4..16 sqrt(N) guideline; at most ``N / 39`` so every list gets FAISS's minimum of 39
   training points, at most 65536), and the best codec that fits, in this order:
   ``IVF,SQ8`` (d bytes per vector: recall@1 within a few points of exact on our figures), then
   product quantisation with M bytes per vector, M = 256, 128, 64, 32, 16, 8: plain ``IVF,PQMnp`` while
   each sub-quantiser covers at most 8 dimensions, else ``OPQM_D,IVF,PQMnp`` (a learned rotation to
   D = 8 * M dimensions first, which keeps long sub-vectors usable). ``np``: no polysemous training,
   which FAISS's factory does by default for PQ, costs ~40x the training time, and only helps Hamming-
   thresholded search, which we do not use.
3. Every IVF list stores an 8-byte id beside each code, so a vector costs ``code + 8`` bytes; fixed
   costs are the coarse centroids ``4 * nlist * D``, the codec tables and the OPQ matrix.

The size estimate is an upper bound of what ``faiss.write_index`` writes (and so of the RAM the loaded
index takes), so a measured index never exceeds the budget it was chosen for. The budget covers the
FAISS index only, not the SQLite metadata (a few hundred bytes per segment, mostly the mask's RLE: 544
measured for a 160x220 box in a 480x640 image; on disk, never loaded).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from ...errors import InputError

MIN_POINTS_PER_LIST = 39  # FAISS warns below this many training points per centroid
TRAIN_POINTS_PER_LIST = 40  # training points per list: just above FAISS's minimum (its range: 39..256)
MIN_CODEC_TRAIN = 256 * MIN_POINTS_PER_LIST  # PQ/SQ codebooks: 256 centroids per sub-quantizer
MAX_NLIST = 1 << 16
ID_BYTES = 8
PQ_SIZES = (256, 128, 64, 32, 16, 8)
MAX_PQ_SUBDIM = 8  # dimensions per PQ sub-quantizer before an OPQ rotation to 8 * M dimensions is used
_FIXED_SLACK = 1 << 16  # file header, factory strings, alignment
_PER_LIST_SLACK = 64  # list sizes / on-disk list records
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class FactoryChoice:
    """What :func:`choose_factory` picked and why.

    Attributes:
        factory: FAISS factory string (inner-product metric).
        nlist: inverted lists (0 for Flat).
        bytes_per_vector: code plus id bytes stored per vector.
        estimated_bytes: upper bound of the index size (file and loaded RAM) for ``n`` vectors.
        budget_bytes: the budget it was chosen for.
        train_size: vectors to train on (0: no training).
        search_params: default FAISS search parameters (``"nprobe=N"``), or None.
        n: vectors, dim: their dimension.
    """

    factory: str
    nlist: int
    bytes_per_vector: int
    estimated_bytes: int
    budget_bytes: int
    train_size: int
    search_params: str | None
    n: int
    dim: int

    def as_dict(self) -> dict:
        return asdict(self)


def parse_size(text: str | int) -> int:
    """Bytes from ``"8G"``, ``"512M"``, ``"1.5GiB"``, ``"2TB"`` or a plain number (K/M/G/T are powers of 1024)."""
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        match = _SIZE_RE.match(str(text))
        if not match:
            raise InputError(f"memory size {text!r} not understood", hint="e.g. 8G, 512M, 1.5GiB or a number of bytes")
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * 1024 ** " kmgt".index(unit or " "))
    if size <= 0:
        raise InputError(f"memory size must be positive, got {text!r}")
    return size


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: a power of 2 near 4 sqrt(N), at most 0.9 N / 39 and 65536 (0: too few)."""
    target = 2 ** round(math.log2(4 * math.sqrt(max(n, 1))))
    trainable = n - n // 10  # up to a tenth of the vectors is held out of training to measure recall
    cap = 2 ** int(math.log2(max(trainable // MIN_POINTS_PER_LIST, 1)))
    nlist = min(target, cap, MAX_NLIST)
    return nlist if nlist >= 4 else 0


def default_nprobe(nlist: int) -> int:
    """Lists visited per query by default: nlist / 64 within [8, 128] (see docs/scaling.md for recall vs nprobe)."""
    return max(1, min(nlist, max(8, min(128, nlist // 64))))


def estimate_bytes(factory: str, n: int, dim: int) -> int:
    """Upper bound of the size of a trained index holding ``n`` vectors of ``dim`` (file and loaded RAM).

    Understands the factories :func:`choose_factory` makes: ``Flat``, ``IVFn,Flat``, ``IVFn,SQ8``,
    ``IVFn,PQm[np]``, ``OPQm_D,IVFn,PQm[np]``, and flat-code ``SQ8``/``PQm[np]``.
    """
    parts = factory.split(",")
    rotation = 0
    out_dim = dim
    if parts[0].startswith("OPQ"):
        match = re.fullmatch(r"OPQ(\d+)(?:_(\d+))?", parts[0])
        if not match:
            raise InputError(f"cannot estimate the size of factory {factory!r}")
        out_dim = int(match.group(2) or dim)
        rotation = 4 * dim * out_dim + 8 * out_dim
        parts = parts[1:]
    nlist = 0
    if parts[0].startswith("IVF"):
        nlist = int(re.fullmatch(r"IVF(\d+)", parts[0]).group(1))
        parts = parts[1:]
    codec = ",".join(parts)
    if codec == "Flat":
        code, tables = 4 * out_dim, 0
    elif codec == "SQ8":
        code, tables = out_dim, 8 * out_dim
    elif re.fullmatch(r"PQ\d+(np)?", codec):
        code, tables = int(codec[2:].removesuffix("np")), 4 * 256 * out_dim
    else:
        raise InputError(f"cannot estimate the size of factory {factory!r}")
    if nlist == 0:
        return _FIXED_SLACK + rotation + tables + n * code
    return _FIXED_SLACK + rotation + tables + 4 * nlist * out_dim + nlist * _PER_LIST_SLACK + n * (code + ID_BYTES)


def candidates(n: int, dim: int, on_disk: bool = False) -> list[str]:
    """Factories in decreasing order of quality (and size) for ``n`` vectors of ``dim``.

    ``on_disk``: inverted files only (their lists can live in a memory-mapped file); ``IVF,Flat`` (exact
    vectors, approximate only in the lists visited) takes the place of ``Flat``.
    """
    nlist = nlist_for(n)
    if on_disk and nlist == 0:
        return []
    found = [f"IVF{nlist},Flat"] if on_disk else ["Flat"]
    if nlist == 0:
        return found
    found.append(f"IVF{nlist},SQ8")
    for m in PQ_SIZES:
        if m >= dim:
            continue
        if dim % m == 0 and dim // m <= MAX_PQ_SUBDIM:
            found.append(f"IVF{nlist},PQ{m}np")
        elif MAX_PQ_SUBDIM * m < dim:
            found.append(f"OPQ{m}_{MAX_PQ_SUBDIM * m},IVF{nlist},PQ{m}np")
    return found


def choose_factory(n: int, dim: int, budget: int | str, on_disk: bool = False) -> FactoryChoice:
    """The best factory for ``n`` vectors of ``dim`` whose index fits ``budget`` bytes (see the module doc).

    Args:
        on_disk: the lists will be memory-mapped from disk: inverted files only (see :func:`candidates`).

    Raises:
        InputError: not even the smallest candidate fits, or too few vectors for an on-disk index.
    """
    if n < 1 or dim < 1:
        raise InputError(f"cannot choose an index for {n} vectors of dimension {dim}")
    budget_bytes = parse_size(budget)
    options = candidates(n, dim, on_disk)
    if not options:
        raise InputError(
            f"{n} vectors are too few for an inverted file (on disk)", hint="drop --on-disk, or index more segments"
        )
    for factory in options:
        size = estimate_bytes(factory, n, dim)
        if size <= budget_bytes:
            return _choice(factory, n, dim, size, budget_bytes)
    smallest = options[-1]
    raise InputError(
        f"no index of {n} vectors of dimension {dim} fits in {budget_bytes} bytes: the smallest choice, "
        f"{smallest}, needs {estimate_bytes(smallest, n, dim)}",
        hint="raise --max-memory, or index fewer segments",
    )


def _choice(factory: str, n: int, dim: int, size: int, budget: int) -> FactoryChoice:
    match = re.search(r"IVF(\d+)", factory)
    nlist = int(match.group(1)) if match else 0
    if nlist == 0:
        return FactoryChoice(factory, 0, 4 * dim, size, budget, 0, None, n, dim)
    code = (size - estimate_bytes(factory, 0, dim)) // n
    train = min(n, max(TRAIN_POINTS_PER_LIST * nlist, MIN_CODEC_TRAIN))
    return FactoryChoice(factory, nlist, code, size, budget, train, f"nprobe={default_nprobe(nlist)}", n, dim)
