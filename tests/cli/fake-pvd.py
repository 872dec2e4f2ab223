#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for gpupass-pvd in the CLI tests (copied to DIR/gpupass-pvd, so
that its process name is gpupass-pvd as gpupass checks): takes --config and
--pidfile like the real one, listens on the `socket =` of every [guest]
section of the config (again on SIGHUP), writes the pidfile once it
listens, and records what it was given in $FAKEPVD_RECORD (one line each:
"argv ...", "listen PATH", "hup"). $FAKEPVD_MODE=fail: prints an error and
exits 1 at once, like gpupass-pvd with a config it refuses.
"""
import os
import signal
import socket
import sys
import time

RECORD = os.environ.get("FAKEPVD_RECORD", "/dev/null")


def record(line):
    with open(RECORD, "a") as f:
        f.write(line + "\n")


def sockets(conf):
    out = []
    with open(conf) as f:
        for line in f:
            k, _, v = line.partition("=")
            if k.strip() == "socket":
                out.append(v.strip())
    return out


def main():
    args = sys.argv[1:]
    record("argv " + " ".join(args))
    conf = args[args.index("--config") + 1]
    pidfile = args[args.index("--pidfile") + 1]
    if os.environ.get("FAKEPVD_MODE") == "fail":
        print("gpupass-pvd: error: unknown key 'bogus' in [guest x]", file=sys.stderr)
        sys.exit(1)
    held = {}
    hup = [False]

    def listen():
        for path in sockets(conf):
            if path in held:
                continue
            if os.path.exists(path):
                os.unlink(path)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.listen(1)
            held[path] = s
            record("listen " + path)

    signal.signal(signal.SIGHUP, lambda *a: hup.__setitem__(0, True))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    listen()
    with open(pidfile, "w") as f:
        f.write("%d\n" % os.getpid())
    print("gpupass-pvd: serving (fake)", flush=True)
    end = time.monotonic() + 120  # never outlives a test run
    while time.monotonic() < end:
        time.sleep(0.05)
        if hup[0]:
            hup[0] = False
            record("hup")
            listen()


if __name__ == "__main__":
    main()
