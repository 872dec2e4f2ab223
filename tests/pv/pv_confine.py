#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Confined workers (issue 10), scenarios:

confine  a worker's /proc/PID/status: no capabilities (effective, permitted,
         bounding), seccomp mode 2, no_new_privs, a uid that is neither the
         server's nor 0; its mount, PID, IPC and network namespaces are not
         the supervisor's; its private directory is its uid's.
attack   native code inside a worker (tests/fixtures/attack-icd.c, an ICD the
         worker's loader calls after the sandbox is in place) tries: writing
         a block device, AF_PACKET / netlink / raw sockets, bpf(),
         unshare(CLONE_NEWUSER), ptrace of the supervisor, its
         /proc/PID/environ, connect() to another guest's socket, mount().
         Every attempt must fail. Run first with GPUPASS_PVD_NO_SANDBOX=1
         (all confinement off, the code before issue 10 had none of it but
         Landlock): the block device write, AF_PACKET, bpf() and the environ
         read must then succeed, so the test can tell.

nonroot  the server run as an unprivileged user (setpriv): its workers cannot
         get a uid or namespaces of their own, start anyway, and the log says
         once which protections are missing; they still have no
         capabilities, no_new_privs and the seccomp filter. Then the same
         user with the ambient capabilities the shipped systemd unit gives:
         workers fully confined, and stopped with the server.

Usage: pv_confine.py BUILD_DIR TEST_BIN_DIR SCENARIO
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvtest  # noqa: E402  (reads BUILD_DIR TEST_BIN_DIR SCENARIO from argv)
from pvtest import Holder, Server, children, fail, guest_env, ok, run, prog  # noqa: E402

ATTACK_ICD = os.path.join(pvtest.BUILD, "tests", "fixtures", "libattack-icd.so")


def status_of(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def confine_run(tmp):
    sock = os.path.join(tmp, "pv.sock")
    srv = Server(tmp, "[server]\nlisten = unix:%s\n[guest default]\n" % sock)
    srv.start([sock])
    try:
        h = Holder(guest_env(tmp, sock))
        h.vadd("a session runs in a confined worker")
        sup = srv.proc.pid
        kids = children(sup)
        if len(kids) != 1:
            fail("expected one worker: %s" % kids)
        w = kids[0]
        st, sst = status_of(w), status_of(sup)
        print("# worker %d: %s" % (w, "; ".join("%s %s" % (k, st.get(k)) for k in
                                                 ("Uid", "Gid", "Groups", "CapEff", "CapPrm",
                                                  "CapBnd", "CapInh", "CapAmb", "Seccomp",
                                                  "NoNewPrivs", "NSpid"))))
        for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            if int(st[k], 16) != 0:
                fail("worker %d: %s %s (the supervisor's: %s)" % (w, k, st[k], sst[k]))
        ok(1, "worker %d: CapEff, CapPrm, CapBnd, CapInh, CapAmb all 0 (supervisor CapEff %s)"
           % (w, sst["CapEff"]))
        if st["Seccomp"] != "2" or st["NoNewPrivs"] != "1":
            fail("worker %d: Seccomp %s, NoNewPrivs %s" % (w, st["Seccomp"], st["NoNewPrivs"]))
        ok(1, "worker %d: Seccomp 2 (filter), NoNewPrivs 1" % w)
        uids = st["Uid"].split()
        if os.geteuid() != 0:
            print("# the server is not root here: workers keep its uid (logged)")
        elif len(set(uids)) != 1 or uids[0] == "0" or uids[0] == sst["Uid"].split()[0]:
            fail("worker %d: Uid %s (supervisor %s)" % (w, st["Uid"], sst["Uid"]))
        else:
            ok(1, "worker %d: uid %s (real, effective, saved, fs), gid %s; supervisor uid %s"
               % (w, uids[0], st["Gid"].split()[0], sst["Uid"].split()[0]))
            d = os.path.join(tmp, "state", "workers", "default.%d" % os.getuid())
            if os.stat(d).st_uid != int(uids[0]) or os.stat(d).st_mode & 0o077:
                fail("its private directory %s: uid %d, mode %o" % (d, os.stat(d).st_uid,
                                                                   os.stat(d).st_mode))
            ok(1, "its private directory is its own (uid %s, mode 0700)" % uids[0])
        same = [n for n in ("mnt", "pid", "ipc", "net")
                if os.readlink("/proc/%d/ns/%s" % (w, n)) == os.readlink("/proc/%d/ns/%s" % (sup, n))]
        if same:
            log = open(os.path.join(tmp, "pvd.log")).read()
            if os.geteuid() == 0 and "workers start without" not in log:
                fail("worker %d shares the supervisor's %s namespace(s) and the log does not "
                     "say why" % (w, ", ".join(same)))
            print("# namespaces not available here: %s (logged)" % ", ".join(same))
        else:
            ok(1, "worker %d: mount, PID, IPC and network namespaces its own (NSpid %s)"
               % (w, st.get("NSpid")))
        h.vadd("the confined worker still computes")
        h.quit()
    finally:
        srv.stop()


UNIT_CAPS = "+setuid,+setgid,+setpcap,+sys_admin,+chown,+fowner,+kill"


def nonroot_run(tmp):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("1..0 # SKIP needs root and setpriv to start the server as another user")
        sys.exit(0)
    nonroot_server(tmp, "nr", None)
    nonroot_server(tmp, "unit", UNIT_CAPS)


def nonroot_server(tmp, sub, caps):
    d = os.path.join(tmp, sub)
    os.makedirs(d)
    os.chmod(tmp, 0o755)
    os.chmod(d, 0o777)
    sock = os.path.join(d, "pv.sock")
    cfg = os.path.join(d, "pvd.ini")
    with open(cfg, "w") as f:
        f.write("[server]\nlisten = unix:%s\n[guest default]\n" % sock)
    os.chmod(cfg, 0o644)
    log_path = os.path.join(d, "pvd.log")
    env = dict(os.environ, HOME=d, XDG_CACHE_HOME=os.path.join(d, "cache"))
    env.pop("OCL_ICD_VENDORS", None)
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan-pocl.supp")
    env["LSAN_OPTIONS"] = ":".join(filter(None, [env.get("LSAN_OPTIONS"), "suppressions=" + supp,
                                                 "print_suppressions=0"]))
    env["GPUPASS_PVD_SANDBOX_READ"] = supp
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    if caps:
        nobody += ["--inh-caps", caps, "--ambient-caps", caps]
    with open(log_path, "w") as log:
        p = subprocess.Popen(nobody + [pvtest.PVD, "--config", cfg, "-v", "--state-dir",
                                       os.path.join(d, "state")], stdout=log, stderr=log, env=env)
    pvtest.SERVER_LOGS.append(log_path)
    try:
        for _ in range(600):
            if os.path.exists(sock) or p.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(sock):
            fail("gpupass-pvd as uid 65534 did not start")
        genv = guest_env(tmp, sock)
        h = Holder(genv)
        h.vadd("a guest of a server that is not root computes")
        kids = children(p.pid)
        if len(kids) != 1:
            fail("expected one worker: %s" % kids)
        st = status_of(kids[0])
        log = open(log_path).read()
        if caps:
            uid = st["Uid"].split()[0]
            if uid in ("0", "65534") or any(int(st[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")) \
                    or st["Seccomp"] != "2" or st["NoNewPrivs"] != "1":
                fail("worker of a server with the unit's capabilities: %s" % st)
            same = [n for n in ("mnt", "pid", "ipc", "net") if os.readlink("/proc/%d/ns/%s" % (
                kids[0], n)) == os.readlink("/proc/%d/ns/%s" % (p.pid, n))]
            if same or "workers start without" in log:
                fail("namespaces shared: %s; log: %s" % (same, log))
            ok(1, "server as uid 65534 with the unit's ambient capabilities: worker %d uid %s, no "
               "capabilities (bounding set too), Seccomp 2, own namespaces" % (kids[0], uid))
            h.quit()
        else:
            if st["Uid"].split()[0] != "65534" or int(st["CapEff"], 16) or int(st["CapPrm"], 16) \
                    or st["Seccomp"] != "2" or st["NoNewPrivs"] != "1":
                fail("worker of a non-root server: %s" % st)
            ok(1, "worker %d: uid 65534 (the server's: it cannot change it), CapEff/CapPrm 0, "
               "Seccomp 2, NoNewPrivs 1" % kids[0])
            h.quit()
            lines = [l for l in log.splitlines() if "workers start without" in l]
            if len(lines) != 1 or "own uid" not in lines[0] or "PID namespace" not in lines[0]:
                fail("expected one log line naming the missing protections: %r" % lines)
            ok(1, "logged once: " + lines[0][:160])
    finally:
        p.terminate()
        if p.wait(30) != 0:
            fail("gpupass-pvd as uid 65534 exited %d on SIGTERM" % p.returncode)
        if "Sanitizer" in open(log_path).read():
            fail("sanitizer report in the server's log")


def loop_device(tmp):
    """A loop device over a scratch file: (device, file) or (None, reason)."""
    if not shutil.which("losetup") or not os.path.exists("/dev/loop-control"):
        return None, "no losetup or /dev/loop-control"
    img = os.path.join(tmp, "disk.img")
    with open(img, "wb") as f:
        f.write(b"\0" * (1 << 20))
    p = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True)
    if p.returncode != 0:
        return None, "losetup: " + p.stderr.strip()
    return p.stdout.strip(), img


def attack_server(tmp, name, env_extra, other_sock):
    """Starts a server whose workers load the attack ICD beside PoCL, makes
    a worker start, returns the attack lines of its log."""
    vend = os.path.join(tmp, "srv-vendors")
    os.makedirs(vend, exist_ok=True)
    lib = os.path.join(vend, "libattack-icd.so")
    shutil.copy(ATTACK_ICD, lib)
    with open(os.path.join(vend, "attack.icd"), "w") as f:
        f.write(lib + "\n")
    for icd in os.listdir("/etc/OpenCL/vendors"):
        shutil.copy(os.path.join("/etc/OpenCL/vendors", icd), vend)
    sock = os.path.join(tmp, "a.sock")
    mnt = os.path.join(tmp, "mnt")
    os.makedirs(mnt, exist_ok=True)
    srv = Server(tmp, "[guest a]\nsocket = %s\n[guest b]\nsocket = %s\n" % (sock, other_sock))
    srv.env = dict(env_extra, OCL_ICD_VENDORS=vend, ATTACK_OTHER_SOCKET=other_sock,
                   ATTACK_MOUNT_DIR=mnt)
    srv.start([sock, other_sock])
    try:
        log_path = os.path.join(tmp, "pvd.log")
        start = len(open(log_path).read())
        run([prog("pv_isolate"), "vadd"], guest_env(tmp, sock))
        ok(1, "%s: guest a computes with the attack ICD loaded in its worker" % name)
        lines = []
        for _ in range(100):
            lines = [l for l in open(log_path).read()[start:].splitlines() if l.startswith("attack ")]
            if "attack done" in lines:
                break
            time.sleep(0.05)
        if "attack done" not in lines:
            fail("%s: the attack ICD did not run in the worker: %s" % (name, lines))
        if not srv.alive():
            fail("the supervisor died")
    finally:
        srv.stop()
    out = {}
    for l in lines:
        m = re.match(r"attack (.*): (\S+)$", l)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def attack_run(tmp):
    dev, img = loop_device(tmp)
    other = os.path.join(tmp, "b.sock")
    env = {"ATTACK_BLOCK_DEV": dev or ""}
    try:
        # Without any confinement: the attacks work (so the test can tell).
        res = attack_server(tmp, "unconfined", dict(env, GPUPASS_PVD_NO_SANDBOX="1"), other)
        for k, v in sorted(res.items()):
            print("# unconfined: attack %s: %s" % (k, v))
        must = ["socket(AF_PACKET, SOCK_RAW)", "bpf(BPF_MAP_CREATE)"]
        must += [k for k in res if k.startswith("read /proc/")]
        if dev:
            must.append("open %s for writing (block device)" % dev)
        for k in must:
            if res.get(k) != "SUCCEEDED":
                fail("without confinement '%s' did not succeed (%s): the test cannot tell "
                     "confinement from an environment that forbids it anyway" % (k, res.get(k)))
        if dev:
            with open(img, "rb") as f:
                if f.read(6) != b"PWNED!":
                    fail("the unconfined worker's write did not reach the block device")
            with open(img, "r+b") as f:
                f.write(b"\0" * 6)
        ok(1, "unconfined (GPUPASS_PVD_NO_SANDBOX=1): %s succeed" % ", ".join(must))
        # Confined: every attack fails.
        res = attack_server(tmp, "confined", env, other)
        want = ["socket(AF_PACKET, SOCK_RAW)", "socket(AF_NETLINK)", "socket(AF_INET, SOCK_RAW)",
                "bpf(BPF_MAP_CREATE)", "unshare(CLONE_NEWUSER)",
                "ptrace(PTRACE_SEIZE) of the supervisor", "connect() to another guest's socket",
                "mount() of a tmpfs"]
        want += [k for k in res if k.startswith("read /proc/")]
        if dev:
            want.append("open %s for writing (block device)" % dev)
        else:
            print("# block device: skipped (%s)" % img)
        if not any(k.startswith("read /proc/") for k in res):
            fail("no environ attack line: %s" % res)
        for k in want:
            v = res.get(k)
            if v is None:
                fail("confined: no line for attack '%s': %s" % (k, res))
            if v == "SUCCEEDED":
                fail("confined: attack '%s' SUCCEEDED" % k)
            ok(1, "confined: attack %s: %s" % (k, v))
        if dev:
            with open(img, "rb") as f:
                if f.read(6) != b"\0" * 6:
                    fail("the confined worker wrote to the block device")
    finally:
        if dev:
            subprocess.run(["losetup", "-d", dev])


def main():
    with tempfile.TemporaryDirectory(prefix="gpupass-pv-") as tmp:
        if pvtest.SCENARIO == "confine":
            confine_run(tmp)
        elif pvtest.SCENARIO == "attack":
            attack_run(tmp)
        elif pvtest.SCENARIO == "nonroot":
            nonroot_run(tmp)
        else:
            fail("unknown scenario " + pvtest.SCENARIO)


if __name__ == "__main__":
    main()
    print("1..%d" % pvtest.N[0])
