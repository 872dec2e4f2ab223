#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Stream mode (issue 5): the PV protocol inline on a byte stream, without
a memfd, through the real ocl-icd loader on PoCL.

Scenarios:
  stream  GPUPASS_SERVER=unix-stream:PATH: pv_basic and pv_threads with every
          call and all data inline on the socket, objects freed after.
  serial  a virtio-serial port as the guest sees it, on the host: a pty
          stands for /dev/vportNpM (GPUPASS_SYSROOT holds a fake
          /sys/class/virtio-ports/vport0p1/name = org.gpupass.pv.0 and
          /dev/vport0p1 -> the pty), and a relay stands for QEMU: it keeps
          one connection to the guest's own socket for the whole test, as
          QEMU's socket chardev does, whatever programs open and close the
          port. No GPUPASS_SERVER: the ICD finds the port by itself.
          Programs one after the other on the same stream, a program
          killed -9 mid-transfer (its objects freed at the next hello, the
          stream resynced), garbage left mid-frame in the port.

Usage: pvstream.py BUILD_DIR TEST_BIN_DIR SCENARIO
"""
import os
import pty
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tty

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvtest  # noqa: E402  (reads BUILD_DIR TEST_BIN_DIR SCENARIO from argv)
from pvtest import (DEFAULT_ME, Server, emit, fail, guest_env, ok, prog, run, status,  # noqa: E402
                    wait_status)

SCENARIO = sys.argv[3]
PORT = "org.gpupass.pv.0"


class Relay:
    """QEMU's side of a virtio-serial port: one connection to the guest's
    socket, copied to and from a pty master; the pty slave is the port."""

    def __init__(self, sock_path):
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)  # a byte stream: no echo, no newline mapping
        self.slave_path = os.ttyname(self.slave)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sock_path)
        self.stop = False
        self.threads = [threading.Thread(target=self.up, daemon=True),
                        threading.Thread(target=self.down, daemon=True)]
        for t in self.threads:
            t.start()

    def up(self):  # guest -> host
        while not self.stop:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                time.sleep(0.01)
                continue
            if data:
                self.sock.sendall(data)

    def down(self):  # host -> guest
        while not self.stop:
            data = self.sock.recv(65536)
            if not data:
                break
            os.write(self.master, data)

    def inject(self, data):
        """Bytes as a program would have written them into the port."""
        self.sock.sendall(data)


def fake_root(tmp, slave_path):
    root = os.path.join(tmp, "root")
    d = os.path.join(root, "sys/class/virtio-ports/vport0p1")
    os.makedirs(d)
    os.makedirs(os.path.join(root, "sys/class/virtio-ports/vport0p2"))
    with open(os.path.join(root, "sys/class/virtio-ports/vport0p2/name"), "w") as f:
        f.write("org.qemu.guest_agent.0\n")  # another port, to be skipped
    with open(os.path.join(d, "name"), "w") as f:
        f.write(PORT + "\n")
    os.makedirs(os.path.join(root, "dev"))
    os.symlink(slave_path, os.path.join(root, "dev/vport0p1"))
    return root


def main():
    with tempfile.TemporaryDirectory(prefix="gpupass-pvs-") as tmp:
        if SCENARIO == "stream":
            sock = os.path.join(tmp, "pv.sock")
            srv = Server(tmp, "[server]\nlisten = unix:%s\n[guest default]\n" % sock)
            srv.start([sock])
            env = guest_env(tmp, sock)
            env["GPUPASS_SERVER"] = "unix-stream:" + sock
            try:
                t0 = time.time()
                run([prog("pv_basic")], env)
                ok(1, "pv_basic in stream mode (%.2f s)" % (time.time() - t0))
                run([prog("pv_threads")], env)
                run([prog("pv_bigprog")], env)
                g = wait_status(sock, DEFAULT_ME, lambda g: g["objects"] == 0 and g["sessions"] == 0,
                                "objects released after the stream programs ended")
                ok(2, "pv_threads and pv_bigprog (staged sources and binaries) in stream mode; "
                      "0 objects after (%d calls)" % g["calls"])
                log = open(os.path.join(tmp, "pvd.log")).read()
                if log.count("stream mode, data inline") < 3:
                    fail("the server did not log the stream-mode sessions")
                ok(3, "the server ran them in stream mode")
            finally:
                srv.stop()
        elif SCENARIO == "serial":
            vm = os.path.join(tmp, "vm1.sock")
            srv = Server(tmp, "[guest vm1]\nsocket = %s\nmemory_max = 512M\n" % vm)
            srv.start([vm])
            relay = Relay(vm)
            root = fake_root(tmp, relay.slave_path)
            env = guest_env(tmp, vm)
            del env["GPUPASS_SERVER"]
            env["GPUPASS_SYSROOT"] = root
            try:
                # the stream is connected (QEMU is up) before any program runs
                wait_status(vm, "vm1", lambda g: g["sessions"] == 0, "status before hello")
                for i in (1, 2):
                    t0 = time.time()
                    run([prog("pv_basic")], env)
                    ok(i, "pv_basic #%d through the port found by name (%.2f s)" % (i, time.time() - t0))
                g = wait_status(vm, "vm1", lambda g: g["objects"] == 0 and g["sessions"] == 1,
                                "one session on the stream, nothing held")
                ok(3, "the stream stays one session across programs, 0 objects (%d calls)" % g["calls"])
                p = subprocess.Popen([prog("pv_hold"), "stress"], env=env, stdout=subprocess.PIPE,
                                     text=True)
                if p.stdout.readline().strip() != "ready":
                    fail("pv_hold did not start on the port")
                g = wait_status(vm, "vm1", lambda g: g["memory_used"] >= 64 << 20,
                                "the stress program holds its buffer")
                time.sleep(0.5)  # mid-transfer
                p.send_signal(signal.SIGKILL)
                p.wait()
                g = status(vm)["vm1"]
                ok(4, "killed -9 mid-transfer; the stream stays, the server still holds %d objects, "
                   "%d bytes" % (g["objects"], g["memory_used"]))
                t0 = time.time()
                run([prog("pv_basic")], env)
                ok(5, "the next program resyncs the stream and works (%.2f s)" % (time.time() - t0))
                g = wait_status(vm, "vm1", lambda g: g["objects"] == 0 and g["memory_used"] == 0,
                                "the killed program's objects freed")
                ok(6, "the killed program's objects and memory freed at the next hello")
                # a frame header that announces 1 MiB and stops after 3 bytes
                relay.inject(bytes.fromhex("47505056" "0100" "0c00" "00000000" "07000000"
                                           "00001000" "00000000") + b"\x01\x02\x03")
                t0 = time.time()
                run([prog("pv_basic")], env)
                ok(7, "garbage left mid-frame: the next program still gets through (%.2f s)"
                   % (time.time() - t0))
                relay.inject(b"\xff" * 1000)
                run([prog("pv_basic")], env)
                ok(8, "garbage between frames: skipped")
                log = open(os.path.join(tmp, "pvd.log")).read()
                if "new hello on its stream" not in log or "protocol error on its stream" not in log:
                    fail("the server did not log the resets")
                if not srv.alive():
                    fail("server died")
                ok(9, "resets logged, server alive")
            finally:
                relay.stop = True
                relay.sock.close()
                srv.stop()
        else:
            fail("unknown scenario " + SCENARIO)


if __name__ == "__main__":
    main()
    print("1..%d" % pvtest.N[0])
