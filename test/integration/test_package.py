"""The Debian package (issue 17): make deb builds build/deb/lb_VERSION_ARCH.deb
and lintian finds no error in it; apt-get installs it; the packaged lb,
lbctl, config, unit, logrotate file, man pages and user are where they
belong; lb starts from the packaged config (its ports and servers moved to
this test's) and serves; apt-get purge leaves nothing behind.

Needs root, dpkg and apt. The suite runs once per build directory
(scripts/run-tests.sh: build, then build-asan), but the package is the
same for both: it is built and tested in the build/ pass only
(LB_BUILD=build). A package that was installed before the test is never
touched: the test skips instead. Every step has a timeout; all together
they take about 30 s once the packaging tools are there (make deb installs
them when missing)."""
import glob
import http.client
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BUILD, ROOT, Replica, free_port, wait_until


def why_skip():
    if os.path.basename(BUILD) != "build":
        return ("the package is built and tested once per run, in the build/ pass "
                "(LB_BUILD=build); this is LB_BUILD=%s" % os.path.basename(BUILD))
    if os.geteuid() != 0:
        return "needs root: installs and purges a package"
    for tool in ("dpkg", "dpkg-query", "apt-get", "git", "make"):
        if not shutil.which(tool):
            return "no %s here" % tool
    return None


pytestmark = pytest.mark.skipif(why_skip() is not None, reason=why_skip() or "")

DEB_DIR = os.path.join(ROOT, "build", "deb")
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
POLICY = "/usr/sbin/policy-rc.d"
TIMINGS = {}


def run(cmd, timeout, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def timed(name, cmd, timeout, **kwargs):
    start = time.monotonic()
    out = run(cmd, timeout, **kwargs)
    TIMINGS[name] = time.monotonic() - start
    return out


def package_status():
    out = run(["dpkg-query", "-W", "-f=${Status}", "lb"], 30)
    return out.stdout.strip() if out.returncode == 0 else ""


@pytest.fixture(scope="module")
def deb():
    """make deb, once: the path of lb_VERSION_ARCH.deb and lintian's report."""
    out = timed("make deb (build + lintian)", ["make", "deb"], 900, cwd=ROOT)
    assert out.returncode == 0, "make deb failed:\n" + (out.stdout + out.stderr)[-6000:]
    debs = glob.glob(os.path.join(DEB_DIR, "lb_*.deb"))
    assert len(debs) == 1, debs
    with open(os.path.join(DEB_DIR, "lintian.txt")) as f:
        return debs[0], f.read()


def test_lintian_finds_no_error(deb):
    path, lintian = deb
    errors = [line for line in lintian.splitlines() if line.startswith("E: ")]
    assert not errors, "\n".join(errors)
    version = re.search(r'LB_VERSION "([^"]+)"', open(os.path.join(ROOT, "lb/core/version.h")).read()).group(1)
    assert os.path.basename(path).startswith("lb_%s_" % version)


def packaged_config(text, port, admin_port, servers, log_file):
    """The packaged lb.yaml with its listener and admin on 127.0.0.1 ports of
    ours, one of our replicas in place of each server, and the log in
    log_file; everything else as packaged."""
    out, section, addrs = [], None, iter(servers)
    for line in text.splitlines():
        top = re.match(r"^(\w+):", line)
        if top:
            section = top.group(1)
        if section == "listeners":
            line = re.sub(r'^(\s+bind:\s*)"?[^"\s#]+"?', r'\g<1>"127.0.0.1:%d"' % port, line)
        elif section == "admin":
            line = re.sub(r"^(\s+bind:\s*)\S+", r"\g<1>127.0.0.1:%d" % admin_port, line)
        elif section == "global":
            line = re.sub(r"^(\s+target:\s*)\S+", r"\g<1>" + log_file, line)
        elif section == "backends":
            line = re.sub(r"^(\s*- addr:\s*)\S+", lambda m: m.group(1) + next(addrs), line)
        out.append(line)
    return "\n".join(out) + "\n"


def get(port, path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    finally:
        conn.close()


def postrotate_script():
    """The postrotate commands of the packaged logrotate file."""
    with open("/etc/logrotate.d/lb") as f:
        text = f.read()
    match = re.search(r"^\s*postrotate\s*$(.*?)^\s*endscript\s*$", text, re.S | re.M)
    assert match, text
    return match.group(1)


def unit_keys(path):
    with open(path) as f:
        return {line.split("=", 1)[0] for line in f if re.match(r"^[A-Za-z]+=", line)}


def test_install_run_and_purge(request, procs, tmp_path):
    status = package_status()
    if status and "not-installed" not in status:
        pytest.skip("lb is already known to dpkg (%s): not touching someone's install" % status)
    for existing in ("/etc/lb", "/usr/sbin/lb", "/usr/sbin/lbctl", "/var/log/lb"):
        if os.path.lexists(existing):
            pytest.skip("%s exists (make install?): purging the package would take it" % existing)
    path, _ = request.getfixturevalue("deb")

    # Keep systemd, if it runs here, from starting lb.service on :8080.
    own_policy = not os.path.lexists(POLICY)
    if own_policy:
        with open(POLICY, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(POLICY, 0o755)
    own_rundir = not os.path.lexists("/run/lb")
    lb = None
    try:
        out = timed("apt-get install", ["apt-get", "install", "-y", "--no-install-recommends", path], 300,
                    env=APT_ENV)
        assert out.returncode == 0, out.stdout + out.stderr

        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "lb"], 30).stdout.split()
        assert "/etc/lb/lb.yaml" in conffiles and "/etc/logrotate.d/lb" in conffiles, conffiles
        user = pwd.getpwnam("lb")
        assert user.pw_uid < 1000 and user.pw_dir == "/nonexistent"
        assert pwd.getpwuid(os.stat("/var/log/lb").st_uid).pw_name == "lb"
        for page in glob.glob(os.path.join(ROOT, "man", "*.[1-9]")):
            name = os.path.basename(page)
            installed = "/usr/share/man/man%s/%s.gz" % (name.rsplit(".", 1)[1], name)
            assert os.path.exists(installed), installed
        watch = run(["/usr/sbin/lb-healthwatch", "-h"], 15)
        assert watch.returncode == 0 and "lb-healthwatch" in watch.stdout + watch.stderr

        unit = next(p for p in ("/lib/systemd/system/lb.service", "/usr/lib/systemd/system/lb.service")
                    if os.path.exists(p))
        with open(unit) as f:
            text = f.read()
        assert "ExecStart=/usr/sbin/lb -c /etc/lb/lb.yaml -p /run/lb/lb.pid" in text, text
        assert "Type=notify" in text and "RuntimeDirectory=lb" in text
        # Every setting of make install's unit is in the package's (paths aside).
        missing = unit_keys(os.path.join(ROOT, "scripts", "lb.service")) - unit_keys(unit)
        assert not missing, "debian/lb.service lacks %s of scripts/lb.service" % sorted(missing)
        if shutil.which("systemd-analyze"):
            out = run(["systemd-analyze", "verify", "--man=no", unit], 60)
            assert out.returncode == 0, out.stdout + out.stderr

        # The packaged config as installed: valid, and the version is ours.
        out = run(["/usr/sbin/lb", "-t", "-c", "/etc/lb/lb.yaml"], 10)
        assert out.returncode == 0 and out.stdout.strip() == "configuration OK", out.stderr
        version = os.path.basename(path).split("_")[1]
        assert version in run(["/usr/sbin/lb", "-V"], 10).stdout

        # Moved to our ports and replicas, it serves.
        with open("/etc/lb/lb.yaml") as f:
            packaged = f.read()
        n = len(re.findall(r"^\s*- addr:", packaged, re.M))
        replicas = [Replica(procs, name="pkg%d" % i).start() for i in range(n)]
        port, admin = free_port(), free_port()
        log_file = "/var/log/lb/lb.log"
        conf = tmp_path / "lb.yaml"
        conf.write_text(packaged_config(packaged, port, admin, [r.addr for r in replicas], log_file))
        os.makedirs("/run/lb", exist_ok=True)
        with open(str(tmp_path / "stderr"), "w") as stderr:
            lb = subprocess.Popen(["/usr/sbin/lb", "-c", str(conf), "-p", "/run/lb/lb.pid"],
                                  stdout=subprocess.DEVNULL, stderr=stderr)
        procs.append(lb)

        def log():
            try:
                with open(log_file) as f:
                    return f.read()
            except FileNotFoundError:
                return ""
        wait_until(lambda: "lb running" in log() or lb.poll() is not None, 10, "lb to start")
        assert lb.poll() is None, log() + (tmp_path / "stderr").read_text()
        names = {r.name for r in replicas}
        for _ in range(n):
            status, body = get(port)
            assert status == 200 and body in names, (status, body)

        out = run(["/usr/sbin/lbctl", "-a", "127.0.0.1:%d" % admin, "stats"], 15)
        assert out.returncode == 0, out.stderr
        assert all(r.addr in out.stdout for r in replicas), out.stdout

        # The unit's ExecReload (systemctl reload) waits for lb's verdict.
        reload_cmd = re.search(r"^ExecReload=(.*)$", text, re.M).group(1).replace("/etc/lb/lb.yaml", str(conf))
        out = run(shlex.split(reload_cmd), 30)
        assert out.returncode == 0 and "reload ok: generation 2 running" in out.stdout, out.stdout + out.stderr

        # logrotate's postrotate (run by hand: logrotate may not be here)
        # makes lb reopen its log.
        os.rename(log_file, log_file + ".1")
        out = run(["/bin/sh", "-ec", postrotate_script()], 15)
        assert out.returncode == 0, out.stderr
        wait_until(lambda: "log files reopened" in log(), 5, "lb to reopen its log")

        lb.send_signal(signal.SIGTERM)
        assert lb.wait(timeout=15) == 0
    finally:
        if lb is not None and lb.poll() is None:
            lb.kill()
            lb.wait(timeout=5)
        purge = timed("apt-get purge", ["apt-get", "purge", "-y", "lb"], 300, env=APT_ENV)
        if own_policy:
            os.unlink(POLICY)
        if own_rundir:
            shutil.rmtree("/run/lb", ignore_errors=True)
        print("timings: " + ", ".join("%s %.1fs" % kv for kv in TIMINGS.items()))

    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert package_status() == "" or "not-installed" in package_status()
    for gone in ("/usr/sbin/lb", "/usr/sbin/lbctl", "/usr/sbin/lb-healthwatch", "/etc/lb", "/var/log/lb", unit):
        assert not os.path.lexists(gone), gone + " is still there after apt-get purge"
