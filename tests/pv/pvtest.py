#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The pv suite's harness: starts gpupass-pvd on a temporary socket with a
temporary config, runs programs through the real ocl-icd loader with
OCL_ICD_VENDORS naming only our .icd, and checks what the server reports.

Usage: pvtest.py BUILD_DIR TEST_BIN_DIR SCENARIO
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD, BINDIR, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]
PVD = os.path.join(BUILD, "gpupass-pvd")
ICD = os.path.join(BUILD, "libgpupass-icd.so")
CLI = os.path.join(BUILD, "gpupass")


# Under [guest default] each local user is a guest of its own, named
# "default.UID" (gpupass-pvd(8)).
DEFAULT_ME = "default.%d" % os.getuid()

N = [0]


def emit(good, what):
    N[0] += 1
    print("%s %d - %s" % ("ok" if good else "not ok", N[0], what), flush=True)


SERVER_LOGS = []


def fail(msg):
    emit(False, msg)
    # the servers' last words, to tell why from a CI log alone
    for path in SERVER_LOGS[-2:]:
        try:
            lines = open(path, errors="replace").read().splitlines()[-25:]
        except OSError:
            continue
        print("# --- last lines of %s:" % path)
        for line in lines:
            print("# " + line)
    print("1..%d" % N[0])
    sys.exit(1)


def relay(out):
    """Re-numbers a child program's TAP lines into ours; the rest becomes comments."""
    for line in out.splitlines():
        m = re.match(r"(not ok|ok) \d+ - (.*)", line)
        if m:
            emit(m.group(1) == "ok", m.group(2))
        elif not re.match(r"1\.\.\d+$", line):
            print("# " + line)


class Server:
    def __init__(self, tmp, config):
        self.tmp = tmp
        self.cfg = os.path.join(tmp, "pvd.ini")
        with open(self.cfg, "w") as f:
            f.write(config)
        self.log = open(os.path.join(tmp, "pvd.log"), "a")
        SERVER_LOGS.append(os.path.join(tmp, "pvd.log"))
        self.proc = None
        self.extra = []
        self.env = {}

    def start(self, wait_for):
        env = dict(os.environ)
        env.pop("OCL_ICD_VENDORS", None)  # the host platforms, never our ICD
        env.update(self.env)
        # PoCL's compiler leaks on a cold cache (see lsan-pocl.supp).
        supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan-pocl.supp")
        env["LSAN_OPTIONS"] = ":".join(filter(None, [env.get("LSAN_OPTIONS"),
                                                     "suppressions=" + supp,
                                                     "print_suppressions=0"]))
        env["GPUPASS_PVD_SANDBOX_READ"] = supp  # LSan reads it at the worker's exit
        self.proc = subprocess.Popen([PVD, "--config", self.cfg, "-v", "--state-dir",
                                      os.path.join(self.tmp, "state")] + self.extra, stdout=self.log,
                                     stderr=self.log, env=env)
        # Up to 30 s: the startup probe initialises the OpenCL platform and
        # compiles a kernel (slow under ASan on a loaded machine).
        for _ in range(600):
            if all(os.path.exists(p) for p in wait_for):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        fail("gpupass-pvd did not start: " + open(os.path.join(self.tmp, "pvd.log")).read())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                fail("gpupass-pvd did not stop on SIGTERM")
            log = open(os.path.join(self.tmp, "pvd.log")).read()
            if rc != 0 or "Sanitizer" in log:
                relay(log)
                fail("gpupass-pvd exited %d on SIGTERM" % rc)
            emit(True, "gpupass-pvd stopped cleanly on SIGTERM")
        self.proc = None

    def alive(self):
        return self.proc and self.proc.poll() is None


def guest_env(tmp, sock):
    vend = os.path.join(tmp, "vendors")
    os.makedirs(vend, exist_ok=True)
    with open(os.path.join(vend, "gpupass.icd"), "w") as f:
        f.write(ICD + "\n")
    env = dict(os.environ)
    env["OCL_ICD_VENDORS"] = vend
    env["GPUPASS_SERVER"] = "unix:" + sock
    return env


def run(cmd, env, timeout=180, expect_rc=0):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    relay(p.stdout)
    if p.returncode != expect_rc:
        relay(p.stderr)
        fail("%s exited %d, expected %d" % (" ".join(cmd), p.returncode, expect_rc))
    return p


def status(sock):
    p = subprocess.run([CLI, "pv", "status", "--json", "--server", "unix:" + sock],
                       capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        fail("gpupass pv status failed: " + p.stderr)
    return {g["name"]: g for g in json.loads(p.stdout)["guests"]}


def wait_status(sock, name, pred, what, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        g = status(sock)[name]
        if pred(g):
            return g
        time.sleep(0.1)
    fail("%s (guest %s: %s)" % (what, name, g))


def ok(n, what):
    emit(True, what)


def prog(name):
    return os.path.join(BINDIR, name)


def two_guests(tmp):
    return ("[guest small]\nsocket = %s/small.sock\nmemory_max = 64M\nweight = 1\n"
            "[guest big]\nsocket = %s/big.sock\nmemory_max = 1G\nweight = 2\n" % (tmp, tmp))


def main():
    if SCENARIO in ("clinfo", "pyopencl", "clpeak") and b"__asan_init" in open(ICD, "rb").read():
        # clinfo and Debian's Python are not built with ASan, so they cannot
        # load a sanitized ICD; the gcc build runs these.
        print("1..0 # SKIP %s cannot load an ASan-built ICD" % SCENARIO)
        sys.exit(0)
    with tempfile.TemporaryDirectory(prefix="gpupass-pv-") as tmp:
        sock = os.path.join(tmp, "pv.sock")
        if SCENARIO in ("basic", "image", "program", "threads", "wait", "clpeak", "raw", "pyopencl", "clinfo"):
            quota = "memory_max = 64M\n" if SCENARIO == "image" else ""
            srv = Server(tmp, "[server]\nlisten = unix:%s\n[guest default]\n%s" % (sock, quota))
            srv.start([sock])
            env = guest_env(tmp, sock)
            try:
                if SCENARIO == "basic":
                    run([prog("pv_basic")], env)
                    run([prog("pv_icd_objects")], env)
                    run([prog("pv_icd_launch")], env)
                    run([prog("pv_subdevice")], env)
                    run([prog("pv_writes")], env)
                    run([prog("pv_errors")], env)
                    g = wait_status(sock, DEFAULT_ME, lambda g: g["objects"] == 0 and g["sessions"] == 0,
                                    "objects released after the program ended")
                    if g["calls"] < 50 or g["device_time_ns"] <= 0:
                        fail("status counts no calls or device time: %s" % g)
                    ok(1, "pv status after pv_basic: %d calls, %d ns device time, 0 objects"
                       % (g["calls"], g["device_time_ns"]))
                elif SCENARIO == "program":
                    run([prog("pv_program")], env)
                    run([prog("pv_bigprog")], env)
                    wait_status(sock, DEFAULT_ME, lambda g: g["objects"] == 0 and g["sessions"] == 0,
                                "programs released after the run")
                    ok(1, "compiled and linked programs released")
                elif SCENARIO == "wait":
                    run([prog("pv_wait")], env)
                    run([prog("pv_icd_wait")], env)
                    run([prog("pv_nonblock")], env)
                    run([prog("pv_gates")], env)
                    wait_status(sock, DEFAULT_ME, lambda g: g["objects"] == 0 and g["sessions"] == 0,
                                "objects released after the waits")
                    ok(1, "waits from several threads: no deadlock, everything released")
                elif SCENARIO == "clpeak":
                    clpeak_run(env)
                elif SCENARIO == "image":
                    if b"__asan_init" in open(PVD, "rb").read():
                        env["PV_LEAK_CHECKED"] = "1"
                    env["PV_IMAGE_QUOTA"] = "64"
                    run([prog("pv_image")], env)
                    wait_status(sock, DEFAULT_ME, lambda g: g["objects"] == 0 and g["memory_used"] == 0,
                                "images and samplers released, memory back to 0")
                    ok(1, "images released: 0 objects, 0 bytes")
                elif SCENARIO == "threads":
                    run([prog("pv_threads")], env)
                    wait_status(sock, DEFAULT_ME, lambda g: g["objects"] == 0 and g["sessions"] == 0,
                                "objects released after the threads ended")
                    ok(1, "4 threads x 100 rounds, all results right, everything released")
                elif SCENARIO == "raw":
                    run([prog("pv_raw"), sock], env)
                    if not srv.alive():
                        fail("server died")
                    log = open(os.path.join(tmp, "pvd.log")).read()
                    if "session ended" not in log:
                        fail("no logged reason for the ended sessions")
                    ok(1, "server alive, reasons logged: %s" %
                       "; ".join(re.findall(r"session ended: ([^\n]*)", log))[:300])
                elif SCENARIO == "pyopencl":
                    run(["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "pv_pyopencl.py")], env)
                elif SCENARIO == "clinfo":
                    clinfo_compare(env)
            finally:
                srv.stop()
        elif SCENARIO == "quota":
            srv = Server(tmp, two_guests(tmp))
            small, big = os.path.join(tmp, "small.sock"), os.path.join(tmp, "big.sock")
            srv.start([small, big])
            try:
                es, eb = guest_env(tmp, small), guest_env(tmp, big)
                es["PV_QUOTA_HOLD"] = eb["PV_QUOTA_HOLD"] = "1"
                # At the same time: 'small' (64M) is refused its third 24 MiB
                # buffer, 'big' (1G) gets all of its buffers.
                ps = subprocess.Popen([prog("pv_quota"), "24", "3", "3"], env=es,
                                      stdout=subprocess.PIPE, text=True)
                pb = subprocess.Popen([prog("pv_quota"), "24", "8", "0"], env=eb,
                                      stdout=subprocess.PIPE, text=True)
                outs, outb = ps.communicate(120), pb.communicate(120)
                relay(outs[0] + outb[0])
                if ps.returncode or pb.returncode:
                    fail("quota programs failed")
                for name in ("small", "big"):
                    wait_status(sock if False else small, name,
                                lambda g: g["objects"] == 0 and g["memory_used"] == 0,
                                "memory back to 0 after the run")
                ok(1, "both guests back to 0 objects / 0 bytes")
            finally:
                srv.stop()
        elif SCENARIO == "kill9":
            srv = Server(tmp, two_guests(tmp))
            srv.extra = ["--worker-idle", "120"]
            small, big = os.path.join(tmp, "small.sock"), os.path.join(tmp, "big.sock")
            srv.start([small, big])
            try:
                # The worker's memory: a first short program warms it up
                # (the OpenCL stack's one-time allocations; the worker
                # stays for --worker-idle), then the killed guest's
                # objects must not stay in it.
                run([prog("pv_isolate"), "vadd"], guest_env(tmp, small))
                kids = children(srv.proc.pid)
                if len(kids) != 1:
                    fail("expected one worker (guest small): %s" % kids)
                wait_status(small, "small", lambda g: g["sessions"] == 0 and g["objects"] == 0,
                            "the warm-up program's objects released")
                worker, rss0 = kids[0], rss_kib(kids[0])
                base = status(small)
                p = subprocess.Popen([prog("pv_hold"), "stress"], env=guest_env(tmp, small),
                                     stdout=subprocess.PIPE, text=True)
                if p.stdout.readline().strip() != "ready":
                    fail("pv_hold did not start")
                g = wait_status(small, "small", lambda g: g["memory_used"] >= 64 << 20,
                                "the stress program holds its buffer")
                rss1 = rss_kib(worker)
                time.sleep(0.3)  # mid-transfer
                p.send_signal(signal.SIGKILL)
                p.wait()
                ok(1, "killed a guest with -9 while it moved 64 MiB blocks (%d objects held)" % g["objects"])
                wait_status(small, "small", lambda g: g["objects"] == base["small"]["objects"]
                            and g["memory_used"] == base["small"]["memory_used"] and g["sessions"] == 0,
                            "objects and memory back to the baseline")
                ok(2, "server freed everything of the killed guest")
                rss2 = rss_kib(worker)
                asan = b"__asan_init" in open(PVD, "rb").read()
                # 64 MiB were held; back within 16 MiB of the warm baseline
                # (ASan keeps freed memory in its quarantine: not checked).
                if not asan and rss2 > rss0 + 16384:
                    fail("worker %d RSS: %d KiB warm, %d KiB holding, %d KiB after the kill"
                         % (worker, rss0, rss1, rss2))
                ok(2, "worker %d RSS %d KiB warm, %d KiB with the guest's buffers, %d KiB after "
                   "its kill -9%s; supervisor %d KiB" % (worker, rss0, rss1, rss2,
                                                        " (ASan: not compared)" if asan else "",
                                                        rss_kib(srv.proc.pid)))
                if children(srv.proc.pid) != [worker]:
                    fail("guest small's worker changed: %s" % children(srv.proc.pid))
                if not srv.alive():
                    fail("server died")
                run([prog("pv_basic")], guest_env(tmp, big))
                ok(3, "the other guest is served normally")
                # A guest killed while its queue waits on its own user event.
                p = subprocess.Popen([prog("pv_hold"), "userwait"], env=guest_env(tmp, small),
                                     stdout=subprocess.PIPE, text=True)
                if p.stdout.readline().strip() != "ready" or p.stdout.readline().strip() != "waiting":
                    fail("pv_hold userwait did not start")
                p.send_signal(signal.SIGKILL)
                p.wait()
                wait_status(small, "small", lambda g: g["objects"] == base["small"]["objects"]
                            and g["memory_used"] == base["small"]["memory_used"] and g["sessions"] == 0,
                            "objects of a guest killed with work blocked on a user event freed")
                ok(4, "work blocked on a dead guest's user event is aborted and freed")
            finally:
                srv.stop()
        elif SCENARIO == "reload":
            # SIGHUP: guest b is added while guest a holds a live session;
            # a keeps it, b serves, a's new weight shows; b removed again.
            a_sock, b_sock = os.path.join(tmp, "a.sock"), os.path.join(tmp, "b.sock")
            srv = Server(tmp, "[guest a]\nsocket = %s\nweight = 1\n" % a_sock)
            srv.start([a_sock])
            env_a = guest_env(tmp, a_sock)
            p = subprocess.Popen([prog("pv_hold"), "gone"], env=env_a, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                if p.stdout.readline().strip() != "ready":
                    fail("pv_hold did not start")
                held = wait_status(a_sock, "a", lambda g: g["sessions"] == 1, "guest a's session")
                with open(srv.cfg, "w") as f:
                    f.write("# by hand\n[guest a]\nsocket = %s\nweight = 5\n\n"
                            "[guest b]\nsocket = %s\nmemory_max = 64M\n" % (a_sock, b_sock))
                srv.proc.send_signal(signal.SIGHUP)
                for _ in range(100):
                    if os.path.exists(b_sock):
                        break
                    time.sleep(0.05)
                if not os.path.exists(b_sock):
                    fail("no socket for the added guest b after SIGHUP")
                ok(1, "SIGHUP: guest b's socket appeared")
                run([prog("pv_basic")], guest_env(tmp, b_sock))
                ok(2, "guest b served after the reload")
                g = status(a_sock)["a"]
                if not srv.alive() or g["sessions"] != 1 or g["objects"] != held["objects"]:
                    fail("guest a's live session did not survive the reload: %s" % g)
                if g["weight"] != 5:
                    fail("guest a's new weight not applied: %s" % g)
                ok(3, "guest a kept its session (%d objects), weight now 5" % g["objects"])
            finally:
                p.kill()
                p.wait()
            run([prog("pv_basic")], env_a)
            ok(4, "guest a still works after the reload")
            with open(srv.cfg, "w") as f:
                f.write("[guest a]\nsocket = %s\n" % a_sock)
            srv.proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                if not os.path.exists(b_sock):
                    break
                time.sleep(0.05)
            if os.path.exists(b_sock):
                fail("guest b still listens after its section was removed")
            ok(5, "SIGHUP: removed guest b stopped listening")
            with open(srv.cfg, "w") as f:
                f.write("[guest a]\nweight = nonsense\n")
            srv.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            run([prog("pv_basic")], env_a)
            ok(6, "a config that does not parse changes nothing: a still served")
            srv.stop()
        elif SCENARIO == "restart":
            srv = Server(tmp, "[server]\nlisten = unix:%s\n[guest default]\n" % sock)
            srv.start([sock])
            env = guest_env(tmp, sock)
            p = subprocess.Popen([prog("pv_hold"), "gone"], env=env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if p.stdout.readline().strip() != "ready":
                fail("pv_hold did not start")
            srv.stop()
            t0 = time.time()
            out, err = p.communicate("go\n", timeout=30)
            relay(out)
            if p.returncode != 0:
                fail("calls did not fail properly with the server gone: " + err)
            lines = [l for l in err.splitlines() if "gpupass" in l]
            if len(lines) != 1 or "lost gpupass-pvd" not in lines[0]:
                fail("expected one clear stderr line, got: %r" % err)
            ok(1, "one stderr line: " + lines[0][:120])
            ok(2, "client finished %.2f s after the server stopped" % (time.time() - t0))
            srv.start([sock])
            try:
                run([prog("pv_basic")], env)
                ok(3, "a new program works with the restarted server")
            finally:
                srv.stop()
        elif SCENARIO == "refused":
            srv = Server(tmp, "[server]\nlisten = unix:%s\n[guest other]\nuid = %d\n"
                         % (sock, os.getuid() + 4242))
            srv.start([sock])
            try:
                p = run([prog("pv_quota"), "1", "1", "0"], guest_env(tmp, sock), expect_rc=1)
                if "refused" not in p.stderr:
                    fail("no refusal message: " + p.stderr)
                ok(1, "refused with: " + p.stderr.strip().splitlines()[0][:150])
            finally:
                srv.stop()
        elif SCENARIO in ("crash", "quota16"):
            isolation_run(tmp, SCENARIO)
        elif SCENARIO == "sandbox":
            sandbox_run(tmp)
        elif SCENARIO == "peruser":
            peruser_run(tmp)
        elif SCENARIO == "workers":
            workers_run(tmp)
        elif SCENARIO == "fair":
            fair_run(tmp)
        elif SCENARIO == "garbage":
            garbage_run(tmp)
        elif SCENARIO in ("watchdog", "hangup", "endless", "buildbomb"):
            watchdog_run(tmp, SCENARIO)
        else:
            fail("unknown scenario " + SCENARIO)


def garbage_run(tmp):
    """Hostile messages that decode: 1500 mutations of valid messages (ids
    of live and dead objects, sizes and offsets at their limits, noise) from
    guest b, a new session each time the server ends one, while guest a
    holds a buffer. a's data must be intact, the server and both workers
    alive (no crash, no sanitizer report), every ended session logged."""
    srv = Server(tmp, "[guest a]\nsocket = %s/a.sock\n[guest b]\nsocket = %s/b.sock\n" % (tmp, tmp))
    srv.start([tmp + "/a.sock", tmp + "/b.sock"])
    try:
        seed = int(os.environ.get("PV_GARBAGE_SEED", "20261122"))
        run([prog("pv_raw"), "garbage", tmp + "/a.sock", tmp + "/b.sock", str(seed), "1500"],
            dict(os.environ), timeout=280)
        if not srv.alive():
            fail("the server died under the attack")
        log = open(os.path.join(tmp, "pvd.log")).read()
        if re.search(r"killed by|Sanitizer|runtime error", log):
            relay(log[-3000:])
            fail("a worker crashed or a sanitizer spoke (seed %d)" % seed)
        ok(1, "seed %d: server and workers alive, %d sessions ended with a logged reason"
           % (seed, log.count("session ended")))
    finally:
        srv.stop()


def fair_run(tmp):
    """Fair sharing: two guests with weights 2:1 keep the device busy at once
    (bench/pv/pv_load); the device time the server measured (profiling data,
    pv status) follows the weights. Then a guest keeping 64 kernels queued
    does not hold up another guest's short jobs."""
    load = os.path.join(BUILD, "bench", "pv", "pv_load")
    srv = Server(tmp, "[guest a]\nsocket = %s/a.sock\nweight = 2\n"
                      "[guest b]\nsocket = %s/b.sock\nweight = 1\n" % (tmp, tmp))
    srv.start([tmp + "/a.sock", tmp + "/b.sock"])
    env = {n: guest_env(tmp, "%s/%s.sock" % (tmp, n)) for n in "ab"}

    def together(args_a, args_b, b_after=0.0):
        before = status(tmp + "/a.sock")
        procs = []
        for n, args in (("a", args_a), ("b", args_b)):
            procs.append(subprocess.Popen([load] + args, env=env[n], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
            time.sleep(b_after)
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            if p.returncode != 0:
                relay(err)
                fail("pv_load %s exited %d" % (" ".join(p.args[1:]), p.returncode))
            outs.append(out.split())
        after = status(tmp + "/a.sock")
        used = [after[n]["device_time_ns"] - before[n]["device_time_ns"] for n in "ab"]
        return outs, used

    try:
        # pv_load SECONDS BATCH ITERS: each guest keeps 4 kernels in flight.
        _, used = together(["4", "4", "2000"], ["4", "4", "2000"])
        share = used[0] / float(sum(used) or 1)
        # Without the scheduler both get 50 % (measured: 50.0/50.0), in
        # every attempt. Under ASan on 2 vCPUs shared with other jobs one
        # 4 s window can miss (53 % seen once): a second, longer one decides.
        if not 0.58 <= share <= 0.76:
            print("# first window: guest a %.1f %% of %.2f s; measuring again"
                  % (100 * share, sum(used) / 1e9))
            _, used = together(["6", "4", "3000"], ["6", "4", "3000"])
            share = used[0] / float(sum(used) or 1)
        if not 0.58 <= share <= 0.76:
            fail("weights 2:1 gave guest a %.1f %% of %.2f s of device time (target 66.7 %%)"
                 % (100 * share, sum(used) / 1e9))
        ok(1, "weights 2:1: guest a %.1f %%, guest b %.1f %% of %.2f s device time (target 66.7/33.3)"
           % (100 * share, 100 - 100 * share, sum(used) / 1e9))
        # b first runs alone (its device time then owes nobody anything),
        # then joins a guest that is already flooding.
        alone = run([load, "2", "1", "200"], env["b"]).stdout.split()
        outs, _ = together(["3.5", "64", "2000"], ["3", "1", "200"], b_after=0.5)
        flood_batch_ms, short_ms, alone_ms = float(outs[0][1]), float(outs[1][1]), float(alone[1])
        # Queued behind the flood, a short job would wait for its batch;
        # held back for the device time it used alone, 12-280 ms (measured
        # before the scheduler forgave that); fair: about 3x alone.
        if short_ms > max(8.0, 8 * alone_ms):
            fail("short job took %.2f ms next to a guest whose 64-kernel batches take %.1f ms "
                 "(%.2f ms alone)" % (short_ms, flood_batch_ms, alone_ms))
        ok(2, "short job %.2f ms next to a guest keeping 64 kernels queued (%.1f ms a batch), "
              "%.2f ms alone" % (short_ms, flood_batch_ms, alone_ms))
    finally:
        srv.stop()


def worker_of(srv, sock, name):
    """The pid of guest @name's worker (from the supervisor's log)."""
    log = open(os.path.join(srv.tmp, "pvd.log")).read()
    pids = re.findall(r"guest %s: worker (\d+) started" % re.escape(name), log)
    return int(pids[-1]) if pids else None


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def watchdog_run(tmp, scenario):
    """The watchdog and bounded builds (issue 10). Guest b runs the
    hostile part with command_timeout = 2s (8s for 'endless', which
    measures guest a's short jobs beside b's endless kernel) and
    build_timeout = 10s; guest a is the bystander. PV_TEST_UNPROTECTED=1
    starts the server with the watchdog and the build check off (test-only
    variables): every scenario must then fail."""
    wd = os.path.join(BINDIR, "pv_watchdog")
    tmo = 8 if scenario == "endless" else 2
    # Under ASan every allocation of the compiler goes through its
    # quarantine (256 MiB): a one-line build then needs more than 256M.
    asan = b"__asan_init" in open(PVD, "rb").read()
    cap = 768 if asan else 256
    # A cold one-line build takes seconds under ASan on a loaded machine:
    # b's builds are bounded only where the bombs are the point.
    btmo = (20 if asan else 10) if scenario == "buildbomb" else 120
    srv = Server(tmp, "[guest a]\nsocket = %s/a.sock\n"
                      "[guest b]\nsocket = %s/b.sock\ncommand_timeout = %ds\nbuild_timeout = %ds\n"
                      "[guest c]\nsocket = %s/c.sock\nbuild_memory_max = %dM\n"
                 % (tmp, tmp, tmo, btmo, tmp, cap))
    srv.extra = ["--worker-idle", "120"]
    # A kept build checker ends after this long idle (10 s in service).
    checker_idle = 4
    srv.env = {"GPUPASS_PVD_TEST_CHECKER_IDLE_MS": str(checker_idle * 1000)}
    if os.environ.get("PV_TEST_UNPROTECTED"):
        srv.env.update({"GPUPASS_PVD_TEST_NO_WATCHDOG": "1", "GPUPASS_PVD_TEST_NO_BUILD_CHECK": "1"})
    srv.start([tmp + "/a.sock", tmp + "/b.sock", tmp + "/c.sock"])
    env = {n: guest_env(tmp, "%s/%s.sock" % (tmp, n)) for n in "abc"}
    logpath = os.path.join(tmp, "pvd.log")

    def spin():
        p = subprocess.Popen([wd, "spin"], env=env["b"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline().split()
        if line != ["started", "0"]:
            fail("the endless kernel did not start: %r" % line)
        return p, time.time()

    def wait_log(pattern, what, timeout=5):
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(pattern, open(logpath).read())
            if m:
                return m
            time.sleep(0.05)
        fail("no log line: " + what)

    try:
        if scenario == "watchdog":
            p, t0 = spin()
            try:
                out, _ = p.communicate(timeout=tmo + 10)
            except subprocess.TimeoutExpired:
                p.kill()
                fail("the endless kernel's clFinish did not return within %d s" % (tmo + 10))
            took = time.time() - t0
            fields = dict(l.split(None, 1) for l in out.splitlines() if " " in l)
            if fields.get("finish", "").split()[:1] != ["-5"] or fields.get("after") != "-5":
                fail("expected CL_OUT_OF_RESOURCES (-5) from clFinish and after: %r" % out)
            if took > tmo + 1:
                fail("CL_OUT_OF_RESOURCES came %.2f s after the launch (command_timeout %d s + 1)"
                     % (took, tmo))
            ok(1, "endless kernel: clFinish -> CL_OUT_OF_RESOURCES %.2f s after the launch "
                  "(command_timeout %d s)" % (took, tmo))
            m = wait_log(r"guest 'b': kernel 'spin' ran longer than command_timeout %ds: worker (\d+) "
                         r"ended; its 1 session\(s\) get CL_OUT_OF_RESOURCES" % tmo, "the watchdog's")
            ok(1, "logged: " + m.group(0))
            run([wd, "vadd"], env["b"])
            ok(1, "guest b's next program runs on a fresh worker (%s, was %s)"
               % (worker_of(srv, None, "b"), m.group(1)))
        elif scenario == "hangup":
            p, _ = spin()
            worker = worker_of(srv, None, "b")
            if not worker or not pid_alive(worker):
                fail("no worker for guest b")
            p.kill()
            p.wait()
            t0 = time.time()
            while pid_alive(worker) and time.time() - t0 < 10:
                time.sleep(0.02)
            took = time.time() - t0
            if took > 2:
                fail("guest b's worker %d was still there %.2f s after kill -9 of its guest "
                     "(its endless kernel burns the CPU)" % (worker, took))
            ok(1, "kill -9 of the guest running an endless kernel: its worker %d gone after %.2f s"
               % (worker, took))
            m = wait_log(r"guest 'b': kernel 'spin' still ran \d+ ms after its last connection closed"
                         r": worker %d ended" % worker, "the hang-up's")
            ok(1, "logged: " + m.group(0))
            run([wd, "vadd"], env["b"])
            ok(1, "guest b's next program runs (worker %s)" % worker_of(srv, None, "b"))
        elif scenario == "endless":
            alone = run([wd, "short", "2"], env["a"]).stdout.split()
            p, t0 = spin()
            time.sleep(0.5)
            beside = run([wd, "short", str(tmo - 2.5)], env["a"]).stdout.split()
            if time.time() - t0 > tmo:
                fail("the measurement outlasted b's endless kernel")
            try:
                out, _ = p.communicate(timeout=tmo + 10)
            except subprocess.TimeoutExpired:
                p.kill()
                fail("the endless kernel was not ended")
            if "finish -5" not in out:
                fail("the endless kernel did not end with CL_OUT_OF_RESOURCES: %r" % out)
            n, p50, p99, mx = int(beside[0]), float(beside[1]), float(beside[2]), float(beside[3])
            a50, a99 = float(alone[1]), float(alone[2])
            print("# short jobs alone: %s jobs, p50 %.3f ms, p99 %.3f ms, max %s ms"
                  % (alone[0], a50, a99, alone[3]))
            print("# beside an endless kernel: %d jobs, p50 %.3f ms, p99 %.3f ms, max %.3f ms"
                  % (n, p50, p99, mx))
            # PoCL cannot preempt the endless work-group: it holds one of
            # the device's threads, the short jobs share the rest. Bounded
            # like pv-fair's: within 8x alone or 8 ms for p50, 50 ms p99.
            if p50 > max(8.0, 8 * a50) or p99 > max(50.0, 8 * a99):
                fail("short jobs beside an endless kernel: p50 %.3f ms, p99 %.3f ms "
                     "(alone: p50 %.3f ms, p99 %.3f ms)" % (p50, p99, a50, a99))
            ok(1, "short jobs beside an endless kernel: p50 %.3f ms, p99 %.3f ms (alone %.3f / %.3f ms), "
                  "%d jobs" % (p50, p99, a50, a99, n))
        elif scenario == "buildbomb":
            # Warm workers (and compiler caches) for every guest first: a
            # cold start takes seconds on a loaded machine.
            for n in "abc":
                run([wd, "vadd"], env[n])
            worker = worker_of(srv, None, "b")

            def checkers():
                # the worker's children named gpupass-build
                out = []
                for d in os.listdir("/proc"):
                    try:
                        st = open("/proc/%s/stat" % d).read()
                    except OSError:
                        continue
                    f = st.rsplit(") ", 1)[-1].split()
                    if "(gpupass-build)" in st and f[0] != "Z" and int(f[1]) == worker:
                        out.append(int(d))
                return sorted(out)

            # Builds one after another share one checker, kept between them
            # (a fresh one per build costs ~1 s here: exec, OpenCL, and the
            # compiler's kernel library).
            run([wd, "builds", "2"], env["b"])
            kept = checkers()
            if len(kept) != 1:
                fail("after two builds guest b's worker has checkers %r: want one kept" % kept)
            run([wd, "builds", "3"], env["b"])
            if checkers() != kept:
                fail("three more builds did not go to the kept checker %r: %r" % (kept, checkers()))
            ok(1, "five builds in two sessions went to one kept checker (pid %d)" % kept[0])
            time.sleep(checker_idle + 2)
            if checkers():
                fail("the checker did not end after %d s idle: %r" % (checker_idle, checkers()))
            ok(1, "the idle checker ended after %d s" % checker_idle)
            for bomb, reason, guest, limit in (
                    ("table", r"gpupass: the build was stopped after %d s \(build_timeout\)" % btmo,
                     "b", btmo),
                    # ASan turns the stack overflow into an abort.
                    ("expr", r"gpupass: the compiler crashed with SIG%s" % ("(SEGV|ABRT)" if asan else "SEGV"),
                     "b", btmo),
                    ("table", r"gpupass: the build was stopped: it needed more than %d MiB "
                              r"\(build_memory_max\)" % cap, "c", 120)):
                t0 = time.time()
                p = subprocess.Popen([wd, "bomb", bomb], env=env[guest], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                # Meanwhile: guest a, and another session of the same guest.
                time.sleep(0.5)
                for other in ("a", guest):
                    t1 = time.time()
                    run([wd, "vadd"], env[other], timeout=limit + 5)
                    if p.poll() is not None and bomb == "table":
                        fail("the %s bomb's build ended before guest %s's program did: it proves "
                             "nothing" % (bomb, other))
                    ok(1, "guest %s computed %s guest %s's %s bomb build (%.1f s)"
                       % (other, "during" if bomb == "table" else "right after", guest, bomb,
                          time.time() - t1))
                try:
                    out, err = p.communicate(timeout=limit + 5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    fail("the %s bomb's build went on past %d s" % (bomb, limit + 5))
                took = time.time() - t0
                first = out.splitlines()[0].split() if out else []
                if first[:2] != ["build", "-11"] or not re.search(reason, out):
                    relay(err)
                    fail("the %s bomb: expected CL_BUILD_PROGRAM_FAILURE with '%s' in the build "
                         "log: %r" % (bomb, reason, out[:400]))
                if took > limit + 3:
                    fail("the %s bomb's build failed after %.1f s" % (bomb, took))
                ok(1, "%s bomb (%s bytes of source) on guest %s: CL_BUILD_PROGRAM_FAILURE after %.1f s, "
                      "log: %s" % (bomb, first[3], guest, took, re.search(reason, out).group(0)))
            if worker_of(srv, None, "b") != worker or not pid_alive(worker):
                fail("guest b's worker %d did not live on" % worker)
            ok(1, "guest b's worker %d lived on" % worker)
            run([wd, "vadd"], env["b"])
            ok(1, "guest b's next program runs on the same worker")
        if not srv.alive():
            fail("the supervisor died")
    finally:
        srv.stop()


class Holder:
    """pv_isolate hold: a session opened once, a checked vector add per call."""

    def __init__(self, env):
        self.p = subprocess.Popen([prog("pv_isolate"), "hold"], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        if self.p.stdout.readline().strip() != "ready":
            fail("pv_isolate hold did not start")

    def vadd(self, what):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if line != "ok 0":
            fail("%s: the other guest's vector add: %r" % (what, line))
        ok(1, what)

    def quit(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        if self.p.wait(30) != 0:
            fail("pv_isolate hold exited %d" % self.p.returncode)


def children(pid):
    """Pids of the processes whose parent is @pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            if int(st[st.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def maps_has(pid, what):
    with open("/proc/%d/maps" % pid) as f:
        return what in f.read()


def isolation_run(tmp, scenario):
    """A guest whose kernel crashes the OpenCL stack ends its own sessions
    only: the other guest's session (opened before) keeps working, the
    server keeps accepting, the crashed guest reconnects."""
    a_sock, b_sock = os.path.join(tmp, "a.sock"), os.path.join(tmp, "b.sock")
    if scenario == "crash":
        cfg = "[guest a]\nsocket = %s\n[guest b]\nsocket = %s\n" % (a_sock, b_sock)
        name = "a"
    else:
        # The reproducer of issue 4: a 16M quota refuses pv_basic's output
        # buffer, the NULL kernel argument crashes PoCL.
        cfg = ("[server]\nlisten = unix:%s\n[guest default]\nmemory_max = 16M\n"
               "[guest b]\nsocket = %s\n" % (a_sock, b_sock))
        name = DEFAULT_ME
    srv = Server(tmp, cfg)
    # The ASan build: let the wild write kill the worker as it would
    # without ASan (its SEGV handler would turn it into an abort with a
    # report), since that crash is the point of the test.
    srv.env = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                      "handle_segv=0"]))}
    srv.start([a_sock, b_sock])
    env_a, env_b = guest_env(tmp, a_sock), guest_env(tmp, b_sock)
    try:
        status(b_sock)
        if children(srv.proc.pid):
            fail("a status request on a guest's own socket started its worker")
        hb = Holder(env_b)
        hb.vadd("guest b computes before")
        if scenario == "crash":
            p = run([prog("pv_isolate"), "crash"], env_a)
            lines = [l for l in p.stderr.splitlines() if "gpupass" in l]
            if len(lines) != 1:
                fail("expected one clear stderr line in the crashed guest, got: %r" % p.stderr)
            ok(1, "the crashed guest's program says: " + lines[0][:120])
            sig = "SIGSEGV"
        else:
            p = subprocess.run([prog("pv_basic")], env=env_a, capture_output=True, text=True,
                               timeout=180)
            if p.returncode == 0:
                fail("pv_basic with a 16M quota did not fail (the reproducer no longer crashes?)")
            ok(1, "pv_basic under a 16M quota failed (exit %d) without hanging" % p.returncode)
            sig = "SIG"
        hb.vadd("guest b computes right after guest %s's worker died" % name)
        if not srv.alive():
            fail("the supervisor died")
        log = ""
        for _ in range(100):
            log = open(os.path.join(tmp, "pvd.log")).read()
            m = re.search(r"guest '%s': worker (\d+) killed by (%s\w*); its (\d+) session\(s\) ended"
                          % (name, sig), log)
            if m:
                break
            time.sleep(0.05)
        if not m:
            relay(log)
            fail("no log line naming guest %s, its worker and the signal" % name)
        ok(1, "logged: " + m.group(0))
        if scenario == "crash" and (m.group(2) != "SIGSEGV" or m.group(3) != "1"):
            fail("expected SIGSEGV and 1 session: " + m.group(0))
        g = wait_status(b_sock, name, lambda g: g["sessions"] == 0 and g["objects"] == 0
                        and g["memory_used"] == 0, "the dead worker's usage cleared")
        ok(1, "pv status: guest %s back to 0 sessions, 0 objects, 0 bytes (%d calls counted)"
           % (name, g["calls"]))
        if status(b_sock)["b"]["sessions"] != 1:
            fail("guest b lost its session")
        run([prog("pv_isolate"), "vadd"], env_a)
        ok(1, "guest %s reconnects to a new worker and computes right" % name)
        hb.vadd("guest b still computes after guest %s came back" % name)
        hb.quit()
        wait_status(b_sock, "b", lambda g: g["sessions"] == 0 and g["objects"] == 0,
                    "guest b's objects released")
        ok(1, "guest b ended normally, everything released")
    finally:
        srv.stop()


def sandbox_run(tmp):
    """Guests' builds cannot read the host's files: #include of an absolute
    path and -I DIR outside the sandbox fail, and the build log does not
    carry the file's contents. Without the sandbox they would (checked, so
    the test can tell)."""
    sock = os.path.join(tmp, "pv.sock")
    secret_dir = tempfile.mkdtemp(prefix="gpupass-secret-")
    word = "TOPSECRET_%d_%d" % (os.getpid(), int(time.time()))
    try:
        with open(os.path.join(secret_dir, "secret.h"), "w") as f:
            f.write("%s leaked here;\n" % word)
        env = guest_env(tmp, sock)
        env["PV_SECRET"] = word
        srv = Server(tmp, "[server]\nlisten = unix:%s\n[guest default]\n" % sock)
        srv.env = {"GPUPASS_PVD_NO_SANDBOX": "1"}
        srv.start([sock])
        try:
            p = subprocess.run([prog("pv_isolate"), "leak", secret_dir], env=env,
                               capture_output=True, text=True, timeout=120)
            if word not in p.stdout:
                relay(p.stdout)
                fail("without the sandbox the build log did not show the secret: the test "
                     "cannot tell a sandbox from a compiler that hides it")
            ok(1, "without the sandbox a guest's build log shows a host file's contents")
        finally:
            srv.stop()
        srv.env = {}
        srv.start([sock])
        try:
            run([prog("pv_isolate"), "include", secret_dir], env)
            log = open(os.path.join(tmp, "pvd.log")).read()
            if "Landlock is not available" in log:
                fail("no Landlock in this kernel")
        finally:
            srv.stop()
    finally:
        shutil.rmtree(secret_dir)


def as_user(uid, cmd):
    """@cmd run as local user @uid (no passwd entry needed)."""
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"] + cmd


def logged_worker(tmp, name):
    """The pid of guest @name's current worker, from the server's log."""
    m = re.findall(r"guest %s: worker (\d+) started" % re.escape(name),
                   open(os.path.join(tmp, "pvd.log")).read())
    return int(m[-1]) if m else None


def peruser_run(tmp):
    """[guest default] gives every local user a guest and a worker of its
    own: a kernel of user B that reads and writes the address of user A's
    buffer (on a CPU platform a kernel is native code in its worker) gets
    nothing of it, A's buffer stays intact, each has default's quota. With
    one worker for both (what gpupass did before), B read A's marker."""
    ua, ub = 4201, 4202
    os.chmod(tmp, 0o755)  # the users reach the socket and the vendors folder
    sock = os.path.join(tmp, "pv.sock")
    srv = Server(tmp, "[server]\nlisten = unix:%s\n[guest default]\nmemory_max = 64M\n"
                 "[guest named]\nuid = %d\n" % (sock, ub + 1))
    # B's wild read may kill its worker; ASan would make that an abort.
    srv.env = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                      "handle_segv=0"]))}
    srv.start([sock])
    env = guest_env(tmp, sock)
    try:
        a = subprocess.Popen(as_user(ua, [prog("pv_poke"), "plant"]), env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        first = a.stdout.readline().strip()
        if not first.startswith("addr 0x") or a.stdout.readline().strip() != "ready":
            fail("pv_poke plant as user %d: %r" % (ua, first))
        addr = first.split()[1]
        p = subprocess.run(as_user(ub, [prog("pv_poke"), "peek", addr]), env=env,
                           capture_output=True, text=True, timeout=120)
        got = p.stdout.strip()
        if "0x5ec2e7" in got:
            fail("user %d's kernel read user %d's buffer at %s: %s" % (ub, ua, addr, got))
        ok(1, "user %d's kernel at user %d's buffer address %s got none of it (%s)"
           % (ub, ua, addr, got[:60]))
        out, _ = a.communicate("check\n", timeout=60)
        if out.strip() != "intact":
            fail("user %d's buffer after the other user's write: %r" % (ua, out))
        ok(1, "user %d's buffer intact after user %d's kernel wrote at its address" % (ua, ub))
        st = status(sock)
        na, nb = "default.%d" % ua, "default.%d" % ub
        if na not in st or nb not in st:
            fail("pv status has no per-user guests %s, %s: %s" % (na, nb, sorted(st)))
        wa, wb = logged_worker(tmp, na), logged_worker(tmp, nb)
        if not wa or not wb or wa == wb:
            fail("expected two workers, got %s and %s" % (wa, wb))
        ok(1, "guests %s and %s, workers %d and %d" % (na, nb, wa, wb))
        if st[na]["memory_max"] != 64 << 20 or st[nb]["memory_max"] != 64 << 20:
            fail("per-user guests do not have default's quota: %s" % st)
        ok(1, "each per-user guest has [guest default]'s 64 MiB quota")
        run(as_user(ub + 1, [prog("pv_isolate"), "vadd"]), env)
        if "default.%d" % (ub + 1) in status(sock):
            fail("a user with a [guest] uid = section became a per-user default guest")
        ok(1, "a user with its own uid = section is that guest, not a default one")
        with open(srv.cfg, "w") as f:
            f.write("[server]\nlisten = unix:%s\n[guest default]\nmemory_max = 32M\n" % sock)
        srv.proc.send_signal(signal.SIGHUP)
        wait_status(sock, na, lambda g: g["memory_max"] == 32 << 20,
                    "per-user guests follow [guest default]'s new quota after a reload")
        ok(1, "after a reload the per-user guests have default's new 32 MiB quota")
    finally:
        srv.stop()


def workers_run(tmp):
    """The process model: the supervisor never loads the OpenCL platform;
    a guest's worker does, and leaves after its idle grace so memory goes
    back to the supervisor's baseline; garbage worker arguments are
    refused."""
    sock = os.path.join(tmp, "pv.sock")
    srv = Server(tmp, "[server]\nlisten = unix:%s\n[guest default]\n" % sock)
    srv.extra = ["--worker-idle", "1"]
    srv.start([sock])
    env = guest_env(tmp, sock)
    try:
        sup = srv.proc.pid
        time.sleep(0.2)
        base = rss_kib(sup)
        if children(sup):
            fail("workers before any guest: %s" % children(sup))
        if maps_has(sup, "pocl"):
            fail("the supervisor loaded PoCL")
        ok(1, "supervisor alone: %d KiB RSS, no worker, no PoCL loaded" % base)
        status(sock)
        if children(sup):
            fail("a status request started a worker")
        ok(1, "pv status answered by the supervisor (no worker started)")
        h = Holder(env)
        kids = children(sup)
        if len(kids) != 1 or not maps_has(kids[0], "pocl"):
            fail("expected one worker with PoCL loaded: %s" % kids)
        h.vadd("a guest's session runs in worker %d" % kids[0])
        wrss = rss_kib(kids[0])
        ok(1, "worker %d: %d KiB RSS; supervisor %d KiB" % (kids[0], wrss, rss_kib(sup)))
        h2 = Holder(env)
        if children(sup) != kids:
            fail("a second session of the same guest started another worker")
        h2.vadd("a second session of the guest shares its worker")
        h2.quit()
        h.quit()
        t0 = time.time()
        while children(sup) and time.time() - t0 < 10:
            time.sleep(0.1)
        if children(sup):
            fail("the idle worker did not leave")
        ok(1, "the idle worker left %.1f s after the last session (grace 1 s)" % (time.time() - t0))
        after = rss_kib(sup)
        if after > base + 4096:
            fail("supervisor RSS grew from %d to %d KiB" % (base, after))
        ok(1, "supervisor back to %d KiB RSS (baseline %d KiB)" % (after, base))
        run([prog("pv_isolate"), "vadd"], env)
        ok(1, "the next connection gets a new worker")
        if not srv.alive():
            fail("server died")
    finally:
        srv.stop()
    # A supervisor killed with -9: its workers end too (they watch getppid()).
    srv.start([sock])
    try:
        h = Holder(env)
        h.vadd("a session before the supervisor is killed")
        kids = children(srv.proc.pid)
        if len(kids) != 1:
            fail("expected one worker: %s" % kids)
        with open("/proc/%d/comm" % kids[0]) as f:
            comm = f.read().strip()
        if comm != "gpupass-worker":
            fail("the worker is named %r" % comm)
        srv.proc.kill()
        srv.proc.wait()
        t0 = time.time()
        while os.path.exists("/proc/%d" % kids[0]) and time.time() - t0 < 10:
            with open("/proc/%d/stat" % kids[0]) as f:
                if f.read().split(") ")[1].startswith("Z"):
                    break  # a zombie of init: it has ended
            time.sleep(0.05)
        alive = os.path.exists("/proc/%d" % kids[0])
        if alive:
            with open("/proc/%d/stat" % kids[0]) as f:
                alive = not f.read().split(") ")[1].startswith("Z")
        if alive:
            fail("worker %d outlived its supervisor" % kids[0])
        ok(1, "worker %d (gpupass-worker) ended %.2f s after its supervisor was killed"
           % (kids[0], time.time() - t0))
        h.p.stdin.write("go\n")
        h.p.stdin.flush()
        line = h.p.stdout.readline().strip()
        if line.startswith("ok"):
            fail("a session still computed with no server")
        h.p.stdin.write("quit\n")
        h.p.stdin.flush()
        h.p.wait(30)
        ok(1, "the guest's next call failed (%s)" % line)
    finally:
        srv.proc = None
        for p in (sock,):
            if os.path.exists(p):
                os.unlink(p)
    # The hidden worker mode with garbage: refused, no crash.
    for args, want in ((["--worker"], 2), (["--worker", "x", "1", "0", "0", "1", "/tmp"], 2),
                       (["--worker", "0", "1", "0", "0", "1", "relative"], 2),
                       (["--worker", "99999", "1", "0", "0", "1", "/tmp"], 2),
                       (["--worker", "0", str(os.getpid()), "0", "0", "1", "/tmp"], 1)):
        p = subprocess.run([PVD] + args, capture_output=True, text=True, timeout=30)
        if p.returncode != want or "Sanitizer" in p.stderr:
            fail("gpupass-pvd %s: exit %d, want %d: %s" % (" ".join(args), p.returncode, want,
                                                        p.stderr))
    ok(1, "worker mode refuses garbage arguments and a missing guest table")


# Values that legitimately differ between two clinfo runs or that PV
# reports on purpose (features it does not forward, said consistently).
CLINFO_EXPECTED = [
    "Platform Name", "Platform Extensions function suffix", "clGetPlatformInfo(NULL",
    "Global memory size",
    "Coarse-grained buffer sharing", "Fine-grained buffer sharing", "Atomics",
    "clGetDeviceIDs(NULL", "clCreateContext(NULL",
    "clCreateContextFromType(NULL", "IL version", "ILs with version", "Max pipe", "Pipe", "Device-side enqueue", "Queue (on device)",
    "Preferred size", "Max size", "Max queues on device", "Max events on device",
    "SVM", "Free memory", "Global free memory", "Run native kernels",
]


# clpeak's sections (all its tests, ~40 s through PV here) and how many
# numbers each prints; every one must be there and positive. A device
# without half precision makes clpeak say it skips that test, natively too.
CLPEAK_SECTIONS = [
    ("Global memory bandwidth (GBPS)", 5),
    ("Single-precision compute (GFLOPS)", 5),
    ("Double-precision compute (GFLOPS)", 5),
    ("Integer compute (GIOPS)", 5),
    ("Integer compute Fast 24bit (GIOPS)", 5),
    ("Transfer bandwidth (GBPS)", 8),
    ("Kernel launch latency", 1),
]


def clpeak_run(env):
    if not shutil.which("clpeak"):
        print("# clpeak not installed")
        fail("clpeak missing (scripts/setup-deps installs it)")
    p = subprocess.run(["clpeak"], env=env, capture_output=True, text=True, timeout=600)
    out = p.stdout + p.stderr
    relay(out)
    if p.returncode != 0:
        fail("clpeak exited %d" % p.returncode)
    if "gpupass PV" not in out:
        fail("clpeak did not run on the gpupass platform")
    if re.search(r"error|fail|\(-\d+\)", out, re.I):
        fail("clpeak reported an error")
    for title, nvals in CLPEAK_SECTIONS:
        i = out.find(title)
        if i < 0:
            fail("clpeak printed no '%s' section" % title)
        vals = re.findall(r":\s*([0-9]+\.[0-9]+)", out[i:])[:nvals]
        if len(vals) < nvals or not all(float(v) > 0 for v in vals):
            fail("clpeak '%s': expected %d positive results, got %s" % (title, nvals, vals))
        ok(1, "clpeak %s: %s" % (title, ", ".join(vals)))


def clinfo_lines(env):
    out = subprocess.run(["clinfo"], env=env, capture_output=True, text=True, timeout=120).stdout
    return [l.rstrip() for l in out.splitlines()]


def clinfo_compare(env_pv):
    env_nat = dict(os.environ)
    env_nat["OCL_ICD_VENDORS"] = "/etc/OpenCL/vendors"
    nat = clinfo_lines(env_nat)
    pv = clinfo_lines(env_pv)
    if not any("gpupass PV (remote:" in l for l in pv):
        fail("clinfo through PV does not show the gpupass platform")

    def key(l):
        return re.split(r"\s{2,}", l.strip())[0]

    natd, pvd = {}, {}
    for l in nat:
        natd.setdefault(key(l), []).append(l)
    for l in pv:
        pvd.setdefault(key(l), []).append(l)
    n = diff = 0
    for k, vals in natd.items():
        if any(k.startswith(e) for e in CLINFO_EXPECTED):
            continue
        n += 1
        if pvd.get(k) != vals:
            diff += 1
            print("# differs: %r\n#   native: %r\n#   pv:     %r" % (k, vals, pvd.get(k)))
    if diff:
        fail("%d of %d clinfo fields differ" % (diff, n))
    ok(1, "clinfo through PV matches native on all %d compared fields" % n)


if __name__ == "__main__":
    main()
    print("1..%d" % N[0])
