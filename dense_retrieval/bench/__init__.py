"""Many backbones on many benchmarks: a layer above the roads, like ``demo/``.

It calls the roads' library functions (never the CLI) and owns only the spec, the scheduling, the records
and the report. A benchmark joins with one registration (:mod:`.benchmarks`) and one runner module.

    registry.py     Setting, Benchmark, CellResult: what a registration holds, the runner contract (torch-free)
    benchmarks.py   the registrations, one per benchmark (torch-free)
    spec.py         the TOML matrix spec: backbones (names, files, random:N, pretraining runs) x benchmarks
    cell.py         one backbone on one benchmark: what a runner is given, the backbone under a protocol
    davis_cell.py   the DAVIS runner (sequences shared across ranks)   voc_cell.py   the VOC runner
    schedule.py     plan, units of work across torchrun ranks, commits; resumable
    folder.py       the bench folder: bench.json, cell.json, part costs (schemas checked on reading)
    usage.py        seconds and peak resident memory of a unit       report.py     tables, details, costs, PNG
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
        "run_bench": ".schedule",
        "load_matrix": ".report",
        "write_report": ".report",
    },
)
