#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""vsock channel (issue 5): gpupass-pvd with `listen = vsock:PORT` and a guest
recognised by its CID, programs through the real ocl-icd loader on PoCL with
GPUPASS_SERVER=vsock:1:PORT — CID 1 (VMADDR_CID_LOCAL) is the loopback
transport (vsock_loopback), the only vsock a machine without
/dev/vhost-vsock has.

Skips (TAP SKIP, with the reason) where VMADDR_CID_LOCAL does not work, as
on the build machines; tests/vm/t-vsock.sh runs it in a guest VM with
vsock_loopback loaded, where it must not skip. Test points carry a [step]
tag that t-vsock.sh reports as its steps.

Usage: pv_vsock.py BUILD_DIR TEST_BIN_DIR vsock
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvtest  # noqa: E402  (reads BUILD_DIR TEST_BIN_DIR SCENARIO from argv)
from pvtest import ICD, Server, emit, fail, guest_env, prog, run  # noqa: E402

CID_LOCAL = 1  # VMADDR_CID_LOCAL, linux/vm_sockets.h


def loopback_works(port):
    """None when a vsock connection to CID 1 can be made, else why not."""
    if not hasattr(socket, "AF_VSOCK"):
        return "this Python has no AF_VSOCK"
    try:
        srv = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    except OSError as e:
        return "no AF_VSOCK sockets in this kernel (%s)" % e.strerror
    try:
        srv.bind((CID_LOCAL, port))
        srv.listen(1)
        c = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect((CID_LOCAL, port))
        c.close()
    except OSError as e:
        return "binding or connecting to VMADDR_CID_LOCAL failed: %s" % e.strerror
    finally:
        srv.close()
    return None


def log_has(tmp, pattern, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(pattern, open(os.path.join(tmp, "pvd.log")).read())
        if m:
            return m.group(0)
        time.sleep(0.2)
    fail("the server never logged /%s/: %s" % (pattern, open(os.path.join(tmp, "pvd.log")).read()[-1500:]))


def main():
    port = 20000 + os.getpid() % 20000
    why = loopback_works(port + 1)
    if why:
        print("1..0 # SKIP vsock loopback unavailable: %s (needs the vsock_loopback module; "
              "the vm suite's vm-vsock test runs this in a guest VM)" % why)
        return
    emit(True, "[loopback] vsock to VMADDR_CID_LOCAL works")
    with tempfile.TemporaryDirectory(prefix="gpupass-vsock-") as tmp:
        srv = Server(tmp, "[server]\nlisten = vsock:%d\n[guest local]\ncid = %d\nmemory_max = 256M\n"
                     % (port, CID_LOCAL))
        t0 = time.time()
        srv.start([])
        log_has(tmp, r"listening on vsock:%d" % port, timeout=120)
        emit(True, "[listen] gpupass-pvd listens on vsock:%d (%.1f s to start)" % (port, time.time() - t0))
        env = guest_env(tmp, "unused")
        env["GPUPASS_SERVER"] = "vsock:%d:%d" % (CID_LOCAL, port)
        try:
            if b"__asan_init" not in open(ICD, "rb").read():
                t0 = time.time()
                p = subprocess.run(["clinfo"], env=env, capture_output=True, text=True, timeout=300)
                if (p.returncode or "gpupass PV (remote:" not in p.stdout
                        or not re.search(r"Number of devices\s+1\n", p.stdout)):
                    fail("[clinfo] clinfo over vsock: %s %s" % (p.stdout[-300:], p.stderr[-300:]))
                emit(True, "[clinfo] clinfo over vsock: the remoted platform, 1 device (%.1f s)"
                     % (time.time() - t0))
            t0 = time.time()
            p = run([prog("pv_basic")], env, timeout=300)
            if "reduction sum: got 209188400, want 209188400" not in p.stdout or \
                    not re.search(r"^ok .* vadd results wrong: got 0, want 0", p.stdout, re.M):
                fail("[vadd] vector add / reduction results not checked")
            emit(True, "[vadd] pv_basic over vsock: vector add and reduction right (%.1f s)"
                 % (time.time() - t0))
            emit(True, "[identity] server log: " +
                 log_has(tmp, r"vsock connection from CID 1: guest local"))
            # the same CID, no longer anyone's: refused with the reason
            with open(srv.cfg, "w") as f:
                f.write("[server]\nlisten = vsock:%d\n[guest other]\ncid = 42\n" % port)
            srv.proc.send_signal(signal.SIGHUP)
            log_has(tmp, r"guest other added")
            p = subprocess.run([prog("pv_basic")], env=env, capture_output=True, text=True, timeout=120)
            if p.returncode == 0 or "refused this program: no [guest] section has cid = 1" not in p.stderr:
                fail("[refused] unknown CID not refused: rc %d, %r" % (p.returncode, p.stderr[-400:]))
            emit(True, "[refused] unknown CID refused: " + p.stderr.strip().splitlines()[0][:200])
            emit(True, "[refused-log] server log: " +
                 log_has(tmp, r"vsock connection from CID 1 refused: [^\n]*"))
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
    if pvtest.N[0]:
        print("1..%d" % pvtest.N[0])
