"""A persistent segment index: FAISS vectors + SQLite metadata (see :mod:`.segment_index`)."""

from .segment_index import SegmentIndex
from .storage import DB_NAME, DEFAULT_FACTORY, FAISS_DIR, index_config

__all__ = ["DB_NAME", "DEFAULT_FACTORY", "FAISS_DIR", "SegmentIndex", "index_config"]
