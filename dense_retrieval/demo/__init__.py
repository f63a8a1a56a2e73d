"""The demo: the toolkit end to end on the embedded backbone, offline.

run.py        the stages (feature PCA, propagation + J&F on a synthetic DAVIS set, retrieval) and summary.json
retrieval.py  the retrieval stage: an index of photos and a synthetic VOC set, a query, its gallery
"""

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"run_demo": ".run", "run_retrieval_demo": ".retrieval"})
