"""Run the CLI and signal it at an exact point of its execution: the kill-point harness.

    python tests/reliability/killpoint.py SPEC.json -- index add IDX images/ ...

SPEC.json names one point and what to do there::

    {"point": {"audit": "os.rename", "match": "*index-*.faiss"},      # before an audited operation
     "signal": "KILL",                                                  # or "INT" (Ctrl-C)
     "hit_file": "/tmp/x/hit"}                                          # written when the point is reached

    {"point": {"function": ["dense_retrieval.index.segment_index:SegmentIndex._commit"],
               "line": "execute(\\"COMMIT\\")", "occurrence": 1}, ...}  # before a source line runs

    {"point": {"after": {"audit": "os.rename", "match": "*/.seq*.tmp"},      # armed by one event,
               "audit": "os.rename", "match": "*propagation.json*"}, ...}    # fires at the next match

An ``audit`` point fires in a Python audit hook (PEP 578) before the operation runs (events such as
``os.rename``, ``open``, ``tempfile.mkdtemp``, ``shutil.rmtree``; ``match`` is an fnmatch pattern
applied to the event's first argument). A ``function`` point fires before the first source line of
that function containing ``line`` runs, the ``occurrence``-th time; the function is named by
``module:qualname`` (a list tries each in turn, so points survive a module move). Nothing in the
package knows about this: the points are found from outside, deterministically, with no timing.

``KILL`` sends SIGKILL to the process itself (nothing more runs, as with ``kill -9``); ``INT`` sends
SIGINT, which Python raises as KeyboardInterrupt at that point, as a Ctrl-C would; ``STOP`` suspends
the process there (the test resumes it with SIGCONT), to run another command while it holds its place.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
import linecache
import os
import signal
import sys
from pathlib import Path


def _resolve(names: list[str]):
    for name in names:
        module_name, _, qualname = name.partition(":")
        try:
            target = importlib.import_module(module_name)
        except ImportError:
            continue
        for part in qualname.split("."):
            target = getattr(target, part, None)
            if target is None:
                break
        if target is not None:
            target = inspect.unwrap(getattr(target, "__func__", target))  # methods, @contextmanager functions
            return target.__code__
    raise SystemExit(f"killpoint: none of {names} found")


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.reliability.fence import install_from_environment

    install_from_environment()  # the test fence: no deletion outside the test's folders
    separator = sys.argv.index("--")
    spec = json.loads(Path(sys.argv[1]).read_text())
    args = sys.argv[separator + 1 :]
    point = spec["point"]
    signals = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM, "STOP": signal.SIGSTOP}
    sig = signals[spec.get("signal", "KILL")]
    occurrence = int(point.get("occurrence", 1))
    seen = 0
    fired = False

    def fire(where: str) -> None:
        nonlocal fired
        fired = True
        if spec.get("hit_file"):
            Path(spec["hit_file"]).write_text(where)
        os.kill(os.getpid(), sig)  # SIGINT: Python raises KeyboardInterrupt at the next bytecode, i.e. here

    after = point.get("after")  # an audit event that must happen first (arms the point)
    armed = after is None

    def matches(condition: dict, name: str, event_args: tuple) -> bool:
        if name != condition["audit"] or not event_args:
            return False
        first = event_args[0]
        text = os.fsdecode(first) if isinstance(first, (str, bytes, os.PathLike)) else str(first)
        return fnmatch.fnmatch(text, condition.get("match", "*"))

    def hook(name: str, event_args: tuple) -> None:
        nonlocal seen, armed
        if fired:
            return
        if not armed:
            armed = matches(after, name, event_args)
            return
        if "audit" in point and matches(point, name, event_args):
            seen += 1
            if seen == occurrence:
                fire(f"{name} {os.fsdecode(event_args[0]) if isinstance(event_args[0], (str, bytes)) else ''}")

    if "audit" in point or after is not None:
        sys.addaudithook(hook)
    if "function" in point:
        code = _resolve(point["function"] if isinstance(point["function"], list) else [point["function"]])
        wanted = point["line"]

        def local(frame, event, arg):
            nonlocal seen
            if fired:
                return None
            if armed and event == "line" and wanted in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
                seen += 1
                if seen == occurrence:
                    fire(f"{frame.f_code.co_qualname}:{frame.f_lineno}")
            return local

        def tracer(frame, event, arg):
            if event == "call" and frame.f_code is code and not fired:
                return local
            return None

        sys.settrace(tracer)

    from dense_retrieval.cli import main as cli_main

    sys.argv = ["dense-retrieval", *args]
    cli_main()


if __name__ == "__main__":
    main()
