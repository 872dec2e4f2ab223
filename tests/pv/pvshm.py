#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The ivshmem bulk region of a VM (issue 5), on the host: stream mode on
a guest's own socket (unix-stream:, as a VM's virtio-serial port is), and
a file standing in for the region. GPUPASS_SYSROOT holds a fake PCI tree
with a 1af4:1110 device (and a VGA to skip) whose resource2 is a symlink
to a file; the server's [guest vm1] ivshmem names a file too.

Scenarios:
  shm      the same file on both sides: pv_bulk (1, 4, 64 MiB write, read,
           copy, maps, every word checked) with the data through the
           region (the ICD's debug line, the server's log, the marker
           pattern found in the file); then GPUPASS_IVSHMEM=off: inline,
           same results, nothing new in the file.
  mismatch the guest's resource2 is another file of the same size (the
           nonce is not in the server's file), or the guest section names
           no file: inline data, correct results, reasons logged.
  hostile  a raw client proves the region, then names bulk offsets beyond
           it (past the end, wrapping u64, on a read and on a write): each
           time the session ends with a logged reason, the server stays up
           and the next hello on the same stream is served.

Usage: pvshm.py BUILD_DIR TEST_BIN_DIR SCENARIO
"""
import os
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvtest  # noqa: E402  (reads BUILD_DIR TEST_BIN_DIR SCENARIO from argv)
from pvtest import Server, fail, guest_env, ok, prog, run, wait_status  # noqa: E402

SCENARIO = sys.argv[3]
REGION = 64 << 20
HDR = 4096
MARK = b"GPUPASS-BULK-MARKER-"


def region_file(path, size=REGION):
    with open(path, "wb") as f:
        f.truncate(size)  # sparse, as QEMU's memory-backend-file makes it
    return path


def fake_root(tmp, resource2):
    root = os.path.join(tmp, "root")
    devs = os.path.join(root, "sys/bus/pci/devices")
    for addr, ven, dev in (("0000:00:02.0", "0x1234", "0x1111"), ("0000:00:05.0", "0x1af4", "0x1110")):
        d = os.path.join(devs, addr)
        os.makedirs(d)
        for name, val in (("vendor", ven), ("device", dev)):
            with open(os.path.join(d, name), "w") as f:
                f.write(val + "\n")
    os.symlink(resource2, os.path.join(devs, "0000:00:05.0/resource2"))
    return root


def has_marker(path):
    with open(path, "rb") as f:
        f.seek(HDR)
        return f.read(len(MARK) * 4) == MARK * 4


def log_of(tmp):
    return open(os.path.join(tmp, "pvd.log")).read()


def bulk(env, what, n):
    t0 = time.time()
    p = run([prog("pv_bulk")], env, timeout=600)
    ok(n, "%s: pv_bulk 1/4/64 MiB all checked (%.2f s)" % (what, time.time() - t0))
    return p.stderr


# ---- the raw client of the hostile scenario ----

def frame(op, payload, req, sync=True):
    return struct.pack("<IHHIIII", 0x56505047, 1, op, 1 if sync else 0, req, len(payload), 0) + payload


def hello_payload(nonce, size=REGION):
    name = b"hostile"
    p = struct.pack("<IQ", 1, 0) + struct.pack("<I", len(name)) + name + struct.pack("<QQ", 0, 0)
    return p + struct.pack("<Q", size) + nonce


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            fail("the server closed the stream")
        b += c
    return b


def raw_hello(s, region, req):
    """Stamps a fresh nonce into the region file, says hello; returns the
    reply's flags."""
    nonce = os.urandom(32)
    with open(region, "r+b") as f:
        f.write(struct.pack("<II", 0x56495047, 1) + nonce)
    s.sendall(frame(1, hello_payload(nonce), req))
    h = recv_exact(s, 24)
    magic, ver, op, flags, rid, ln, _ = struct.unpack("<IHHIIII", h)
    body = recv_exact(s, ln)
    if op != 1 or rid != req:
        fail("unexpected reply to the raw hello: op %d req %d" % (op, rid))
    err, nl = struct.unpack_from("<iI", body, 0)
    off = 8 + nl
    (ndev,) = struct.unpack_from("<I", body, off)
    (fl,) = struct.unpack_from("<I", body, off + 4 + 8 * ndev)
    if err != 0:
        fail("raw hello refused: %d" % err)
    return fl


def write_req(boff, size):
    # queue, mem, offset, size, where=1 (bulk), blocking, bulk offset, blob, waitlist, event
    return struct.pack("<QQQQIIQIIQ", 0x10001, 0x10002, 0, size, 1, 1, boff, 0, 0, 0)


def read_req(boff, size):
    # queue, mem, offset, size, where=1, bulk offset, waitlist, event
    return struct.pack("<QQQQIQIQ", 0x10001, 0x10002, 0, size, 1, boff, 0, 0)


def hostile(tmp, sock, region):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    data = REGION - HDR
    cases = [
        ("write past the end", 15, write_req(data - 4096, 8192)),
        ("read starting past the end", 16, read_req(data + 1, 1)),
        ("write with a u64-wrapping offset", 15, write_req(0xFFFFFFFFFFFFF000, 0x2000)),
        ("read of more than the region", 16, read_req(0, data + 1)),
    ]
    req = 100
    for i, (what, op, payload) in enumerate(cases):
        before = log_of(tmp).count("beyond its ivshmem region")
        fl = raw_hello(s, region, req)
        if not fl & 4:
            fail("the raw client's region was not accepted (flags %#x)" % fl)
        req += 1
        # a sync request: if the server served it, a reply would come
        s.sendall(frame(op, payload, req))
        req += 1
        end = time.time() + 10
        while time.time() < end:
            log = log_of(tmp)
            if log.count("beyond its ivshmem region") > before and \
                    log.count("protocol error on its stream") > i:
                break
            time.sleep(0.05)
        else:
            fail("%s: no logged end of the session" % what)
        ok(i + 1, "%s: session ended, reason logged" % what)
    # the same stream: a fresh hello is served (the VM can reconnect)
    fl = raw_hello(s, region, req)
    ok(len(cases) + 1, "after the bad offsets, a new hello on the same stream is served "
       "(flags %#x)" % fl)
    s.close()


def main():
    with tempfile.TemporaryDirectory(prefix="gpupass-pvshm-") as tmp:
        sock = os.path.join(tmp, "vm1.sock")
        region = region_file(os.path.join(tmp, "vm1.shm"))
        if SCENARIO == "shm":
            guest_side = region
            cfg = "[guest vm1]\nsocket = %s\nivshmem = %s\n" % (sock, region)
        elif SCENARIO == "mismatch":
            guest_side = region_file(os.path.join(tmp, "other.shm"))
            cfg = "[guest vm1]\nsocket = %s\nivshmem = %s\n" % (sock, region)
        elif SCENARIO == "hostile":
            guest_side = region
            cfg = "[guest vm1]\nsocket = %s\nivshmem = %s\n" % (sock, region)
        else:
            fail("unknown scenario " + SCENARIO)
        srv = Server(tmp, cfg)
        srv.start([sock])
        env = guest_env(tmp, sock)
        env["GPUPASS_SERVER"] = "unix-stream:" + sock
        env["GPUPASS_SYSROOT"] = fake_root(tmp, guest_side)
        env["GPUPASS_DEBUG"] = "1"
        try:
            if SCENARIO == "shm":
                err = bulk(env, "through the region", 1)
                if "bulk data through the ivshmem region at 0000:00:05.0 (64 MiB)" not in err:
                    fail("the ICD did not say it uses the region: " + err)
                if "data through its ivshmem region" not in log_of(tmp):
                    fail("the server did not log the region")
                if not has_marker(region):
                    fail("the marker pattern is not in the region's file")
                ok(2, "the ICD and the server say the region is used; the marker is in the file")
                with open(region, "r+b") as f:
                    f.seek(HDR)
                    f.write(b"\0" * len(MARK) * 4)
                env["GPUPASS_IVSHMEM"] = "off"
                err = bulk(env, "GPUPASS_IVSHMEM=off, inline", 3)
                if "bulk data inline (GPUPASS_IVSHMEM=off)" not in err or has_marker(region):
                    fail("GPUPASS_IVSHMEM=off still used the region: " + err)
                ok(4, "inline when turned off: the file untouched")
                wait_status(sock, "vm1", lambda g: g["objects"] == 0 and g["memory_used"] == 0,
                            "objects released")
                ok(5, "everything released")
            elif SCENARIO == "mismatch":
                err = bulk(env, "nonce not in the server's file", 1)
                if "did not take the ivshmem region" not in err:
                    fail("the ICD did not say the region was refused: " + err)
                if "its nonce is not in the file" not in log_of(tmp) or has_marker(region) or \
                        has_marker(guest_side):
                    fail("mismatch not logged, or data went through a region")
                ok(2, "a region the server cannot prove: inline, logged, no region written")
                # a guest section without the key
                with open(srv.cfg, "w") as f:
                    f.write("[guest vm1]\nsocket = %s\n" % sock)
                srv.proc.send_signal(1)  # SIGHUP: the key is gone
                time.sleep(0.5)
                env["GPUPASS_SYSROOT"] = fake_root(os.path.join(tmp, "r2"), region)
                err = bulk(env, "no ivshmem key", 3)
                if "did not take" not in err or "no ivshmem = FILE" not in log_of(tmp) or \
                        has_marker(region):
                    fail("an unconfigured region was used: " + err)
                ok(4, "no ivshmem key: inline, logged")
            elif SCENARIO == "hostile":
                hostile(tmp, sock, region)
                wait_status(sock, "vm1", lambda g: g["sessions"] == 0, "the raw client's session gone")
                err = bulk(env, "a well-behaved program after the hostile one", 6)
                if "bulk data through the ivshmem region" not in err:
                    fail("the next program did not get the region: " + err)
                if not srv.alive():
                    fail("server died")
                ok(7, "server alive; the region still serves the next program")
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
    print("1..%d" % pvtest.N[0])
