#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""TCP channels (issue 5): gpupass-pvd with `listen = tcp:127.0.0.1:PORT`, TLS
certificates made at test time with the openssl CLI, programs through the
real ocl-icd loader on PoCL with GPUPASS_SERVER=tcp:127.0.0.1:PORT.

Scenarios:
  tls    [server] tls_cert/tls_key/tls_ca; guest g1 pinned by its client
         certificate (tls_peer_sha256), guest g2 by its token. Vector add
         and reduction (pv_basic) as g1 and g2, clinfo (gcc build); refused:
         a server certificate from another CA (clear ICD stderr line), no
         client certificate, a wrong token (refused and logged by the
         server); garbage before the handshake, after it, and in the hello
         end only that connection while another guest's program runs on.
  plain  plain TCP: refused at config load on a non-loopback address (the
         error names the key), served on 127.0.0.1 with GPUPASS_TLS=off.

Usage: pv_tls.py BUILD_DIR TEST_BIN_DIR SCENARIO
"""
import os
import re
import socket
import faulthandler
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvtest  # noqa: E402  (reads BUILD_DIR TEST_BIN_DIR SCENARIO from argv)
from pvtest import PVD, ICD, Server, emit, fail, guest_env, prog, run  # noqa: E402

SCENARIO = sys.argv[3]
TOKEN2 = "g2-token-7f3c9a1e5b"


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
    if p.returncode != 0:
        fail("openssl %s: %s" % (" ".join(args[:2]), p.stderr.strip()[-300:]))


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 signed by it, two client
    certificates signed by it, and another CA that signed nothing of ours."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("ca", "otherca"):
        openssl("req", "-x509", *key, "-days", "2", "-subj", "/CN=gpupass test " + ca,
                "-keyout", os.path.join(d, ca + ".key"), "-out", os.path.join(d, ca + ".crt"),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign")
    exts = {"server": "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            "client1": "extendedKeyUsage=clientAuth\n", "client2": "extendedKeyUsage=clientAuth\n"}
    for name, ext in exts.items():
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        openssl("req", *key, "-subj", "/CN=" + name, "-keyout", os.path.join(d, name + ".key"),
                "-out", os.path.join(d, name + ".csr"))
        openssl("x509", "-req", "-in", os.path.join(d, name + ".csr"), "-CA",
                os.path.join(d, "ca.crt"), "-CAkey", os.path.join(d, "ca.key"),
                "-CAcreateserial", "-days", "2", "-out", os.path.join(d, name + ".crt"),
                "-extfile", os.path.join(d, name + ".ext"))


def fingerprint(crt):
    p = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-fingerprint", "-sha256"],
                       capture_output=True, text=True, check=True)
    return p.stdout.strip().split("=", 1)[1]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(srv, tmp, port):
    srv.start([])
    log = os.path.join(tmp, "pvd.log")
    for _ in range(200):
        if "listening on tcp:127.0.0.1:%d" % port in open(log).read():
            return
        if not srv.alive():
            break
        time.sleep(0.05)
    fail("gpupass-pvd did not listen on tcp: " + open(log).read()[-800:])


def log_has(tmp, pattern, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(pattern, open(os.path.join(tmp, "pvd.log")).read())
        if m:
            return m.group(0)
        time.sleep(0.1)
    fail("the server never logged /%s/: %s" % (pattern, open(os.path.join(tmp, "pvd.log")).read()[-1500:]))


def tcp_env(tmp, port, **kw):
    env = guest_env(tmp, "unused")
    env["GPUPASS_SERVER"] = "tcp:127.0.0.1:%d" % port
    for k, v in kw.items():
        if v is None:
            env.pop("GPUPASS_" + k, None)
        else:
            env["GPUPASS_" + k] = v
    return env


def refused(cmd, env, stderr_pat, what):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    line = [x for x in p.stderr.splitlines() if x.startswith("gpupass:")]
    if p.returncode == 0 or not re.search(stderr_pat, p.stderr):
        fail("%s: exit %d, stderr %r (want /%s/)" % (what, p.returncode, p.stderr[-600:], stderr_pat))
    emit(True, "%s: %s" % (what, line[0][:200] if line else p.stderr.strip()[:200]))


def hello_frame(payload):
    """A HELLO frame header as the ICD sends it (src/proto/proto.h)."""
    return struct.pack("<IHHIIII", 0x56505047, 1, 1, 1, 77, len(payload), 0) + payload


def tls_client(port, d):
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    ctx.load_cert_chain(os.path.join(d, "client1.crt"), os.path.join(d, "client1.key"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def drained(sock):
    """True when the server closed the connection (EOF or reset) in 20 s:
    a handshake that stalls is cut off after the server's 10 s limit."""
    sock.settimeout(20)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def scenario_tls(tmp):
    make_certs(tmp)
    ok_basic = 0
    port = free_port()
    cfg = ("[server]\nlisten = tcp:127.0.0.1:%d\ntls_cert = %s/server.crt\ntls_key = %s/server.key\n"
           "tls_ca = %s/ca.crt\n"
           "[guest g1]\ntls_peer_sha256 = %s\nmemory_max = 256M\n"
           "[guest g2]\ntoken = %s\n" % (port, tmp, tmp, tmp, fingerprint(tmp + "/client1.crt"), TOKEN2))
    srv = Server(tmp, cfg)
    start(srv, tmp, port)
    c1 = dict(TLS_CA=tmp + "/ca.crt", TLS_CERT=tmp + "/client1.crt", TLS_KEY=tmp + "/client1.key")
    c2 = dict(TLS_CA=tmp + "/ca.crt", TLS_CERT=tmp + "/client2.crt", TLS_KEY=tmp + "/client2.key",
              TOKEN=TOKEN2)
    hold = None
    try:
        t0 = time.time()
        p = run([prog("pv_basic")], tcp_env(tmp, port, **c1))
        if "reduction sum: got 209188400, want 209188400" not in p.stdout:
            fail("pv_basic over TLS did not check the reduction")
        emit(True, "pv_basic (vector add, reduction) over TLS as g1 (%.2f s)" % (time.time() - t0))
        log_has(tmp, r"tcp client 127\.0\.0\.1:\d+ \(certificate [0-9a-f]+\.\.\.\): guest g1")
        ok_basic += 1
        run([prog("pv_basic")], tcp_env(tmp, port, **c2))
        log_has(tmp, r"\): guest g2")
        emit(True, "pv_basic over TLS as g2, recognised by its token")
        if b"__asan_init" not in open(ICD, "rb").read():
            p = subprocess.run(["clinfo"], env=tcp_env(tmp, port, **c1), capture_output=True,
                               text=True, timeout=120)
            if (p.returncode or "gpupass PV (remote:" not in p.stdout
                    or not re.search(r"Number of devices\s+1\n", p.stdout)):
                fail("clinfo over TLS: %s %s" % (p.stdout[-300:], p.stderr[-300:]))
            emit(True, "clinfo over TLS: the remoted platform, 1 device")
        # refusals
        refused([prog("pv_basic")], tcp_env(tmp, port, **dict(c1, TLS_CA=tmp + "/otherca.crt")),
                r"gpupass: cannot reach gpupass-pvd at tcp:127\.0\.0\.1:\d+: TLS: the peer's "
                r"certificate does not verify: .*NOT trusted.*GPUPASS_TLS_CA",
                "server certificate from another CA refused by the ICD")
        refused([prog("pv_basic")], tcp_env(tmp, port, TLS_CA=tmp + "/ca.crt", TLS_CERT=None,
                                            TLS_KEY=None),
                r"gpupass: cannot reach gpupass-pvd at tcp:[^\n]*the server (refused the TLS "
                r"connection|closed the connection after the TLS handshake)[^\n]*GPUPASS_TLS_CERT", "no client certificate: refused, the ICD says why")
        emit(True, "server log: " + log_has(tmp, r"tcp client 127\.0\.0\.1:\d+ refused: TLS handshake: "
                                                 r"[^\n]*(No certificate|[Cc]ertificate is required)"
                                                 r"[^\n]*")[:200])
        refused([prog("pv_basic")], tcp_env(tmp, port, **dict(c2, TOKEN="wrong-token-0000000")),
                r"refused this program: no \[guest\] section matches",
                "client2 with a wrong token: refused with the server's reason")
        emit(True, "server log: " + log_has(tmp, r"refused pv_basic [^\n]*no \[guest\] section "
                                                 r"matches[^\n]*")[:200])
        # garbage: a long-running guest program must not notice
        hold = subprocess.Popen([prog("pv_hold"), "stress"], env=tcp_env(tmp, port, **c1),
                                stdout=subprocess.PIPE, text=True)
        if hold.stdout.readline().strip() != "ready":
            fail("pv_hold did not start over TLS")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"\x16\x03\x01\x00\x10" + os.urandom(2000))
        if not drained(s):
            fail("garbage instead of a TLS handshake: connection still open")
        s.close()
        log_has(tmp, r"tcp client 127\.0\.0\.1:\d+ refused: TLS handshake[^\n]*")
        emit(True, "garbage before the handshake: that connection closed, logged")
        s = tls_client(port, tmp)
        s.sendall(os.urandom(4000))
        if not drained(s):
            fail("garbage after the handshake: connection still open")
        s.close()
        log_has(tmp, r"session ended before it began: not a token preamble and a HELLO")
        emit(True, "garbage after the handshake: that connection closed, logged")
        s = tls_client(port, tmp)
        s.sendall(b"GPPVAUTH\x00\x00" + hello_frame(os.urandom(300)))
        if not drained(s):
            fail("a garbage hello: connection still open")
        s.close()
        log_has(tmp, r"ended during hello[^\n]*")
        emit(True, "a hello with a garbage payload: that session ended, logged")
        s = tls_client(port, tmp)
        s.sendall(b"GPPVAUTH\xff\xff")
        if not drained(s):
            fail("a preamble announcing 65535 token bytes: connection still open")
        s.close()
        emit(True, "a preamble with an oversized token length: that connection closed")
        if hold.poll() is not None:
            fail("the other guest's program died during the garbage (exit %s)" % hold.returncode)
        hold.terminate()
        hold.wait(30)
        if not srv.alive():
            fail("server died")
        run([prog("pv_basic")], tcp_env(tmp, port, **c1))
        emit(True, "after the garbage: the running program was untouched, a new one is served")
    finally:
        if hold and hold.poll() is None:
            hold.kill()  # never left behind, also when a check failed
            hold.wait()
        srv.stop()


def scenario_plain(tmp):
    port = free_port()
    cfgf = os.path.join(tmp, "wild.ini")
    with open(cfgf, "w") as f:
        f.write("[server]\nlisten = tcp:0.0.0.0:%d\n[guest default]\n" % port)
    env = dict(os.environ)
    env.pop("OCL_ICD_VENDORS", None)
    p = subprocess.run([PVD, "--config", cfgf], capture_output=True, text=True, timeout=60, env=env)
    if p.returncode == 0 or "plain TCP is only allowed on a loopback address" not in p.stderr \
            or "tls_cert" not in p.stderr:
        fail("plain TCP on 0.0.0.0 not refused at config load: rc %d, %r" % (p.returncode, p.stderr))
    emit(True, "plain TCP on 0.0.0.0 refused at load: " + p.stderr.strip()[:200])
    p = subprocess.run([PVD, "--listen", "tcp:192.0.2.1:%d" % port], capture_output=True,
                       text=True, timeout=60, env=env)
    if p.returncode == 0 or "plain TCP" not in p.stderr:
        fail("--listen plain TCP on a non-loopback address not refused: %r" % p.stderr)
    emit(True, "--listen tcp:192.0.2.1 without TLS refused too")
    srv = Server(tmp, "[server]\nlisten = tcp:127.0.0.1:%d\n[guest default]\n" % port)
    start(srv, tmp, port)
    try:
        run([prog("pv_basic")], tcp_env(tmp, port, TLS="off"))
        emit(True, "pv_basic over plain TCP on 127.0.0.1 (GPUPASS_TLS=off)")
        env = tcp_env(tmp, port, TLS="off")
        env["GPUPASS_SERVER"] = "tcp:localhost:%d" % port
        refused([prog("pv_basic")], env, r"GPUPASS_TLS=off is only allowed for a loopback address",
                "GPUPASS_TLS=off refused by the ICD for a name (not a loopback literal)")
    finally:
        srv.stop()


def main():
    # a hang shows where it is, before meson's timeout kills us silently
    faulthandler.dump_traceback_later(240, exit=True)
    with tempfile.TemporaryDirectory(prefix="gpupass-tls-") as tmp:
        if SCENARIO == "tls":
            scenario_tls(tmp)
        elif SCENARIO == "plain":
            scenario_plain(tmp)
        else:
            fail("unknown scenario " + SCENARIO)


if __name__ == "__main__":
    main()
    print("1..%d" % pvtest.N[0])
