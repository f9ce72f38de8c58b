#!/usr/bin/env python3
"""Times a command that ends in an interactive shell, as a person at a
terminal meets it: the command runs on a pseudo-terminal of its own, and the
time is taken from its start to the shell's first prompt (a line ending in
"# " or "$ " after the JSON the command printed first). Then the shell is
left with `exit`.

    bench-prompt.py COMMAND [ARGS...]

Prints one JSON object: {"prompt_ms": ..., "printed": <the command's JSON>}.
"""
import json
import os
import pty
import re
import select
import sys
import time

LIMIT_S = 60


def main():
    argv = sys.argv[1:]
    if not argv:
        sys.exit("usage: bench-prompt.py COMMAND [ARGS...]")
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    seen = b""
    prompt_ms = None
    while prompt_ms is None:
        left = start + LIMIT_S - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            sys.exit("bench-prompt: no shell prompt within %d s; the terminal shows: %r" % (LIMIT_S, seen))
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            sys.exit("bench-prompt: the command ended before a prompt; it printed: %r" % seen)
        seen += chunk
        # Terminal queries and colours after the prompt (busybox asks where the
        # cursor is) are not text.
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
        if "}" in text and re.search(r"[#$] $", text.split("}")[-1]):
            prompt_ms = (time.monotonic() - start) * 1000
    os.write(fd, b"exit\r")
    while True:
        ready, _, _ = select.select([fd], [], [], 10)
        if not ready:
            break
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    _, status = os.waitpid(pid, 0)
    line = next((l for l in seen.decode(errors="replace").splitlines() if l.startswith("{")), "null")
    print(json.dumps({"prompt_ms": round(prompt_ms, 1), "exit": os.waitstatus_to_exitcode(status),
                      "printed": json.loads(line)}))


main()
