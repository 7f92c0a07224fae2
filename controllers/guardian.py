"""Guardian process: releases the agent's held keys and buttons when the agent dies, even by SIGKILL.

Started by ``controllers.safety.GuardianClient`` as ``python -m controllers.guardian --timeout 1.0``
in its own session (so Ctrl-C in the terminal leaves it alive). It reads lines on stdin:

    H 113 65 | 1      the key codes and mouse buttons the agent holds now
    .                 heartbeat

and releases what is held (through XTEST, on its own X connection) when stdin closes (the agent
exited or was killed: the kernel closes the pipe) or when no line arrives for ``--timeout`` seconds
(the agent hangs). It prints READY once connected, and exits after the pipe closes.
"""

import argparse
import os
import select
import signal
import sys


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--timeout", type=float, default=1.0)
    args = p.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    import Xlib.display

    from controllers.display import xtest_release

    d = Xlib.display.Display()
    held = [set(), set()]  # key codes, buttons

    def release(*_):
        if held[0] or held[1]:
            xtest_release(d, held[0], held[1])
        held[0], held[1] = set(), set()

    def on_term(*_):
        release()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    fd, buf = sys.stdin.fileno(), b""
    while True:
        ready, _, _ = select.select([fd], [], [], args.timeout)
        if not ready:
            release()  # no heartbeat: the agent hangs
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break  # the agent is gone
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.startswith(b"H"):
                ks, _, bs = line[1:].partition(b"|")
                held[0], held[1] = {int(v) for v in ks.split()}, {int(v) for v in bs.split()}
    release()
    d.close()


if __name__ == "__main__":
    main()
