#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""make test-tsan: the ICD built with ThreadSanitizer (TSAN_BUILD), under the
threaded PV programs, against gpupass-pvd of the gcc build (BUILD: the
server's PoCL is not instrumented, so only the guest side is judged). Fails
on any ThreadSanitizer report, failed check or exit status.

Usage: pvtsan.py BUILD TSAN_BUILD
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

BUILD, TSAN = sys.argv[1], sys.argv[2]
PROGRAMS = ["pv_gates", "pv_wait", "pv_icd_wait", "pv_threads", "pv_nonblock"]


def main():
    n, bad = 0, 0
    with tempfile.TemporaryDirectory(prefix="gpupass-tsan-") as tmp:
        sock = os.path.join(tmp, "pv.sock")
        with open(os.path.join(tmp, "pvd.ini"), "w") as f:
            f.write("[server]\nlisten = unix:%s\n[guest default]\n" % sock)
        env = dict(os.environ)
        env.pop("OCL_ICD_VENDORS", None)
        log = open(os.path.join(tmp, "pvd.log"), "w")
        srv = subprocess.Popen([os.path.join(BUILD, "gpupass-pvd"), "--config",
                                os.path.join(tmp, "pvd.ini"), "--state-dir",
                                os.path.join(tmp, "state")], stdout=log, stderr=log, env=env)
        for _ in range(600):
            if os.path.exists(sock) or srv.poll() is not None:
                break
            time.sleep(0.05)
        os.makedirs(os.path.join(tmp, "vendors"))
        with open(os.path.join(tmp, "vendors", "gpupass.icd"), "w") as f:
            f.write(os.path.abspath(os.path.join(TSAN, "libgpupass-icd.so")) + "\n")
        env.update(OCL_ICD_VENDORS=os.path.join(tmp, "vendors"), GPUPASS_SERVER="unix:" + sock,
                   TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1")
        try:
            for prog in PROGRAMS:
                n += 1
                p = subprocess.run([os.path.join(TSAN, "tests", "pv", prog)], env=env,
                                   capture_output=True, text=True, timeout=600)
                races = p.stderr.count("WARNING: ThreadSanitizer")
                fails = p.stdout.count("not ok")
                checks = p.stdout.count("ok ") - fails
                good = p.returncode == 0 and races == 0 and fails == 0 and checks > 0
                print("%s %d - %s under TSan: %d checks passed, %d failed, %d reports, exit %d"
                      % ("ok" if good else "not ok", n, prog, checks, fails, races, p.returncode))
                if not good:
                    bad += 1
                    for line in (p.stderr.splitlines() + p.stdout.splitlines())[:60]:
                        print("#   " + line)
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(30)
    print("1..%d" % n)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
