"""Many backbones on many benchmarks: a layer above the roads, like ``demo/``.

It calls the roads' library functions (never the CLI) and owns only the spec, the scheduling, the records
and the report. A benchmark joins with one registration (:mod:`.benchmarks`) and one runner module.

    registry.py     Setting, Benchmark, CellResult: what a registration holds, the runner contract (torch-free)
    benchmarks.py   the registrations, one per benchmark (torch-free)
    spec.py         the TOML matrix spec: backbones (names, files, random:N, pretraining runs) x benchmarks
"""

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BENCHMARKS": ".benchmarks",
        "Benchmark": ".registry",
        "CellResult": ".registry",
        "Setting": ".registry",
        "read_spec": ".spec",
    },
)
