"""The output lock (data/outputs.locked): held for a run, refused to a second writer, never kept by a forked child."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from dense_retrieval.data.outputs import locked
from dense_retrieval.errors import InputError

HOLDER = """
import os, sys, time
from dense_retrieval.data.outputs import locked
with locked(sys.argv[1]):
    child = os.fork()
    if child == 0:  # a data-loading worker, say: outlives the parent's kill -9 for a while
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    with locked(tmp_path), pytest.raises(InputError, match="being written by another process"), locked(tmp_path):
        pass
    with locked(tmp_path):  # released at the end of the block
        pass


def test_a_killed_holder_releases_the_folder_even_while_its_forked_child_lives(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    try:
        with pytest.raises(InputError), locked(tmp_path):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        os.kill(child, 0)  # the child still runs ...
        deadline = time.monotonic() + 10
        while True:  # ... and the folder is free (at once; the loop only absorbs the kill's delivery)
            try:
                with locked(tmp_path):
                    break
            except InputError:
                assert time.monotonic() < deadline, "the forked child kept the lock"
                time.sleep(0.05)
    finally:
        holder.kill()
        holder.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
