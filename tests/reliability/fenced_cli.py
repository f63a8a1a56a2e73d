"""``python tests/reliability/fenced_cli.py ARGS...``: the CLI behind the test fence (:mod:`.fence`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.reliability.fence import install_from_environment  # noqa: E402

if __name__ == "__main__":
    install_from_environment()
    from dense_retrieval.cli import main

    sys.argv = ["dense-retrieval", *sys.argv[1:]]
    main()
