"""How long calls behave: they release the GIL, stop on Ctrl-C with KeyboardInterrupt (the
next call runs normally), and draw a progress bar on stderr only when asked or watched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np

import dtdcert
from conftest import C6_INPUTS, C6_MODEL, REPO


def test_ctrl_c_raises_keyboard_interrupt_and_the_next_call_runs():
    # Python turns SIGINT into KeyboardInterrupt only where it started with SIGINT handled by
    # default: a process a non-interactive shell starts in the background inherits it
    # ignored (Ctrl-C never reaches it), so the script installs Python's handler itself.
    script = textwrap.dedent(f"""
        import os, signal, threading
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import numpy as np
        import dtdcert
        model = dtdcert.load({str(C6_MODEL)!r})
        x = np.random.default_rng(0).standard_normal((1_000_000, 10))
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            audit = model.audit(x, explain=0, progress=False)
            print("finished", audit.samples)
        except KeyboardInterrupt:
            print("interrupted")
        print("next", model.audit(x[:10], explain=0).samples)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["interrupted", "next", "10"], done.stdout


def test_long_calls_release_the_gil(c6):
    x = np.random.default_rng(1).standard_normal((5000, 10))
    finished = threading.Event()
    result = {}

    def work():
        result["audit"] = c6.audit(x, explain=0, progress=False)
        finished.set()

    worker = threading.Thread(target=work)
    worker.start()
    turns = 0
    while not finished.is_set():
        turns += 1
        finished.wait(0.001)
    worker.join()
    assert result["audit"].samples == 5000
    # This thread kept running Python while the audit ran.
    assert turns > 10


def test_progress_is_drawn_when_asked(c6, capsys, monkeypatch):
    monkeypatch.setattr(dtdcert._progress, "DELAY", 0.0)
    c6.audit(C6_INPUTS, explain=0, progress=True)
    err = capsys.readouterr().err
    assert "100/100 samples" in err and err.endswith("\n")
    c6.explain(C6_INPUTS, progress=True)
    assert "100/100 inputs" in capsys.readouterr().err
    c6.audit(C6_INPUTS, explain=0, progress=False)
    # Under pytest stderr is no terminal and no notebook runs: no bar by default.
    c6.audit(C6_INPUTS, explain=0)
    assert capsys.readouterr().err == ""


def test_an_exception_in_the_progress_callback_stops_the_call(c6):
    class Stop(Exception):
        pass

    def progress(done, total):
        raise Stop()

    try:
        c6._native.audit(str(C6_INPUTS), None, 0, None, ("z+", None, [], "ignore", 0.0, 1e-5,
                                                         "output"), None, False, False, None,
                         False, 60.0, "microlp", None, progress)
    except Stop:
        pass
    else:
        raise AssertionError("the callback's exception was not raised")
    # The stop request it made is cleared.
    assert c6.audit(C6_INPUTS, explain=0).samples == 100
