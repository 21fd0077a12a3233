"""A helper process of ``jobs=N`` does not outlive the command that started it (``parallel.stop_with_parent``)."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent('''
    import multiprocessing, os, sys, threading, time
    from starbench.evaluate.parallel import stop_with_parent

    def child(path, protected):
        if protected:
            stop_with_parent()
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(300)

    if __name__ == "__main__":
        context = multiprocessing.get_context("spawn")
        def start(path, protected):  # as Helpers does: a thread starts the process and waits for it
            process = context.Process(target=child, args=(path, protected))
            process.start()
            process.join()
        for path, protected in ((sys.argv[1], True), (sys.argv[2], False)):
            threading.Thread(target=start, args=(path, protected), daemon=True).start()
        time.sleep(300)
''')


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie left for a reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_helper_process_stops_when_the_command_is_killed(tmp_path):
    script = tmp_path / "command.py"
    script.write_text(PARENT)
    protected, plain = tmp_path / "protected.pid", tmp_path / "plain.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(protected), str(plain)])
    pids = []
    try:
        assert wait_for(lambda: protected.is_file() and plain.is_file() and protected.read_text()
                        and plain.read_text(), 120), "the helper processes did not start"
        pids = [int(protected.read_text()), int(plain.read_text())]
        parent.send_signal(signal.SIGKILL)  # the command ends with no cleanup of its own
        parent.wait()
        assert wait_for(lambda: not alive(pids[0]), 20), "the helper trains on after its command"
        assert alive(pids[1])  # without it a process started the same way lives on (what the helper did before)
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
