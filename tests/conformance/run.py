#!/usr/bin/env python3
"""memcached 1.6.18's own test suite (its t/ directory) against ferrocache.

`make conformance` runs this. It fetches memcached's source with Debian's tools (`apt-get source
memcached`, after adding a bookworm `deb-src` entry if none is there) into a cache directory outside
the repository, links two stand-ins into it (`memcached-debug`, which runs ferrocache, and
`timedrun`), runs each file of files.txt with perl under a time limit, then each file of
tls-files.txt (memcached's ssl_* files) with the harness's `SSL_TEST=1`, and prints one line per
file and `N passed, M failed`. `--tls` runs every file of both lists with `SSL_TEST=1` (every
connection the harness makes is TLS). The harness uses TLS only when `memcached-debug -h` mentions
`enable-ssl` and IO::Socket::SSL loads, else it silently stays in plaintext: both are checked
first, so a TLS run that would prove nothing is a setup error. The repository holds no copy of
memcached's code or tests.

A file passes when it runs its whole plan and every assertion passes, except an assertion that
skip.txt names (see that file). A file that skips itself (`skip_all`) fails. An assertion the file
skips by itself (a SKIP block it also skips against memcached, e.g. in conn-limits.t and watcher.t)
is shown on the PASS line. The full output of each file is kept in <cache>/logs/.

known-failures.txt names whole files that are known not to pass yet (each one a debt, with its
reason). They still run and print their line, as `KNOWN` instead of `FAIL`; with `--strict` (and
when files are named on the command line) they count as failures. A listed file that passes is
reported so that its entry is removed. `.ci/run` runs the suite without `--strict`: a file that
passed before and fails now turns CI red; a known failure does not.

Exit status: 0 when every file passes (or fails only as known), 1 when one fails, 2 when the setup
fails.
Python 3 standard library only.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VERSION = "1.6.18"
DEB_SRC_FILE = Path("/etc/apt/sources.list.d/ferrocache-deb-src.sources")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


class SetupError(Exception):
    pass


def say(msg):
    print(msg, flush=True)


def privileged(cmd):
    if os.geteuid() == 0:
        return cmd
    if shutil.which("sudo") is None:
        raise SetupError(f"`{' '.join(cmd)}` needs root and sudo is not installed")
    return ["sudo"] + cmd


def run_checked(cmd, **kw):
    r = subprocess.run(cmd, **kw)
    if r.returncode != 0:
        raise SetupError(f"`{' '.join(map(str, cmd))}` failed with exit code {r.returncode}")
    return r


# ---- fetching memcached's source -------------------------------------------------------------


def has_bookworm_deb_src():
    """Whether some apt source already offers bookworm's main component as deb-src."""
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(d.iterdir())
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                    if m:
                        fields[m.group(1).lower()] = m.group(2).split()
                if (fields.get("enabled", ["yes"]) != ["no"]
                        and "deb-src" in fields.get("types", [])
                        and "bookworm" in fields.get("suites", [])
                        and "main" in fields.get("components", [])):
                    return True
        elif f.suffix == ".list" or f.name == "sources.list":
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 4 and words[0] == "deb-src" and words[2] == "bookworm" \
                        and "main" in words[3:]:
                    return True
    return False


def add_bookworm_deb_src():
    entry = ("Types: deb-src\nURIs: http://deb.debian.org/debian\n"
             "Suites: bookworm bookworm-updates\nComponents: main\n")
    if KEYRING.exists():
        entry += f"Signed-By: {KEYRING}\n"
    say(f"conformance: adding a bookworm deb-src entry in {DEB_SRC_FILE}")
    run_checked(privileged(["tee", str(DEB_SRC_FILE)]), input=entry.encode(),
                stdout=subprocess.DEVNULL)


def apt_update():
    say("conformance: apt-get update")
    run_checked(privileged(["apt-get", "update", "-qq"]))


def apt_install(packages):
    say(f"conformance: apt-get install {' '.join(packages)}")
    cmd = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq"] + packages
    run_checked(privileged(cmd), stdout=subprocess.DEVNULL)


def missing_tools():
    """Debian packages the fetch and the t/ files need that are not installed."""
    need = []
    if shutil.which("dpkg-source") is None:
        need.append("dpkg-dev")  # apt-get source unpacks with it
    if shutil.which("saslpasswd2") is None:
        need.append("sasl2-bin")  # binary-sasl.t makes its users with it
    if shutil.which("timeout") is None:
        need.append("coreutils")
    probe = ["perl", "-MTest::More", "-MIO::Socket::INET", "-MIO::Socket::UNIX", "-MFile::Temp",
             "-MData::Dumper", "-e1"]
    if shutil.which("perl") is None or subprocess.run(
            probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        need.append("perl")  # t/lib/MemcachedTest.pm and the t/ files use only core modules
    return need


def source_versions():
    r = subprocess.run(["apt-cache", "showsrc", "memcached"], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    return re.findall(r"^Version:\s*(\S+)", r.stdout, re.M)


def upstream(debian_version):
    v = debian_version.split(":", 1)[-1]
    return v.rsplit("-", 1)[0] if "-" in v else v


def ensure_source(cache):
    """memcached's unpacked source tree in `cache`, fetched once with apt-get source."""
    tree = cache / f"memcached-{VERSION}"
    stamp = cache / f".fetched-{VERSION}"
    if stamp.exists() and (tree / "t" / "lib" / "MemcachedTest.pm").is_file():
        return tree
    if shutil.which("apt-get") is None:
        raise SetupError("apt-get not found: `make conformance` fetches memcached's source "
                         "with Debian's tools (Debian bookworm)")
    added = False
    if not has_bookworm_deb_src():
        add_bookworm_deb_src()
        added = True
    need = missing_tools()
    if added or need or not source_versions():
        apt_update()
    if need:
        apt_install(need)
    versions = source_versions()
    if not versions:
        raise SetupError("apt offers no source package for memcached even with a bookworm "
                         "deb-src entry (see `apt-cache showsrc memcached`)")
    wanted = [v for v in versions if upstream(v) == VERSION]
    if not wanted:
        raise SetupError(f"apt offers memcached source {', '.join(versions)}, not {VERSION}; "
                         f"the file list in tests/conformance/files.txt is for {VERSION}")
    version = sorted(wanted)[-1]
    cache.mkdir(parents=True, exist_ok=True)
    work = cache / f".fetch-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    say(f"conformance: apt-get source memcached={version} into {cache}")
    try:
        run_checked(["apt-get", "source", "-qq", "--only-source", f"memcached={version}"],
                    cwd=work, stdout=subprocess.DEVNULL)
        fetched = work / f"memcached-{VERSION}"
        if not (fetched / "t" / "lib" / "MemcachedTest.pm").is_file():
            got = ", ".join(p.name for p in work.iterdir())
            raise SetupError(f"apt-get source gave {got}, not memcached-{VERSION} with a t/ "
                             "directory")
        shutil.rmtree(tree, ignore_errors=True)
        fetched.rename(tree)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stamp.write_text(version + "\n")
    say(f"conformance: memcached {version} source ready in {tree}")
    return tree


def link_shims(tree):
    for name in ("memcached-debug", "timedrun"):
        target = HERE / name
        tmp = tree / f".{name}.{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target)
        os.replace(tmp, tree / name)


# ---- running and judging the t/ files --------------------------------------------------------


def read_list(path):
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def read_skips(path):
    """{file: {selector: reason}}; a selector is a test number (int) or a description (str)."""
    skips = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        body, _, reason = line.partition(" # ")
        parts = body.strip().split(None, 1)
        if len(parts) != 2 or not reason.strip():
            raise SetupError(f"{path}:{n}: want `t/FILE.t SELECTOR  # reason`, got: {line}")
        name, sel = parts[0], parts[1].strip().strip('"')
        skips.setdefault(name, {})[int(sel) if sel.isdigit() else sel] = reason.strip()
    return skips


def read_known(path):
    """{file: reason} from known-failures.txt (`t/FILE.t  # reason`); no file, no entries."""
    known = {}
    if not path.exists():
        return known
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        body, _, reason = line.partition(" # ")
        if len(body.split()) != 1 or not reason.strip():
            raise SetupError(f"{path}:{n}: want `t/FILE.t  # reason`, got: {line}")
        known[body.strip()] = reason.strip()
    return known


TEST_LINE = re.compile(r"^(not )?ok (\d+)\b ?-? ?(.*)$")
DIRECTIVE = re.compile(r"(?<!\\)#\s*(TODO|SKIP)\b\s*(.*)$", re.I)


def parse_tap(stdout):
    plan, skip_all, tests = None, None, []
    for line in stdout.splitlines():
        m = re.match(r"^1\.\.(\d+)(?:\s*#\s*skip\S*\s*(.*))?", line, re.I)
        if m and plan is None:
            plan = int(m.group(1))
            if plan == 0:
                skip_all = (m.group(2) or "no reason given").strip()
            continue
        m = TEST_LINE.match(line)
        if m:
            rest = m.group(3)
            d = DIRECTIVE.search(rest)
            directive = (d.group(1).upper(), d.group(2).strip()) if d else None
            desc = rest[:d.start()].rstrip() if d else rest
            desc = desc.replace("\\#", "#")
            tests.append((m.group(1) is None, int(m.group(2)), desc, directive, line))
    return plan, skip_all, tests


def failure_detail(stderr):
    """`t/foo.t line N` and the got/expected of the first failed-test diagnostic on stderr."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#\s+Failed test", line):
            block = [line]
            for more in lines[i + 1:]:
                if not more.startswith("#") or re.match(r"^#\s+Failed test", more):
                    break
                block.append(more)
            text = "\n".join(block)
            parts = []
            m = re.search(r"at (\S+) line (\d+)", text)
            if m:
                parts.append(f"{m.group(1)} line {m.group(2)}")
            for key in ("got", "expected"):
                m = re.search(rf"^#\s+{key}: (.*)$", text, re.M)
                if m:
                    parts.append(f"{key} {m.group(1)[:60]}")
            return ", ".join(parts) or None
    return None


def first_error(stderr):
    """The first stderr line that is neither a TAP diagnostic nor a ferrocache log line."""
    for line in stderr.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not re.match(r"^\[(INFO|DEBUG|TRACE) ", line):
            return line[:160]
    return None


def judge(name, rc, timed_out, limit, stdout, stderr, skips):
    """(passed, reason, stale skip selectors)."""
    plan, skip_all, tests = parse_tap(stdout)
    listed = skips.get(name, {})
    used, held = set(), set()
    failures, skipped = [], []
    for ok, num, desc, directive, line in tests:
        if directive and directive[0] == "SKIP":
            skipped.append((num, directive[1] or desc))
        sel = num if num in listed else desc if desc in listed else None
        if ok or (directive and directive[0] == "TODO"):
            if ok and sel is not None:
                held.add(sel)
            continue
        if sel is not None:
            used.add(sel)
            continue
        failures.append((num, desc, line))
    stale = sorted((s for s in held if s not in used), key=str)
    err = first_error(stderr)
    if timed_out:
        last = f"; last test seen: {tests[-1][1]}" if tests else ""
        first = f"; first failure: {failures[0][2].strip()}" if failures else ""
        return False, f"timeout after {limit}s{last}{first}", stale
    if skip_all is not None:
        return False, f"skipped: {skip_all}", stale
    if failures:
        num, desc, line = failures[0]
        detail = failure_detail(stderr)
        more = f"; {len(failures)} failed" if len(failures) > 1 else ""
        said = f"; stderr: {err}" if err else ""
        return False, f"first failure: {line.strip()}" + (f" ({detail})" if detail else "") \
            + more + said, stale
    if plan is None or len(tests) < plan:
        ran = f"ran {len(tests)} of {plan}" if plan is not None else f"no plan, ran {len(tests)}"
        return False, f"died ({ran}, exit code {rc})" + (f": {err}" if err else ""), stale
    if rc != 0 and rc != min(len(used), 254):
        return False, f"exit code {rc}" + (f": {err}" if err else ""), stale
    notes = []
    if used:
        notes.append(f"failed as skip.txt expects: {', '.join(sorted(map(str, used)))}")
    if skipped:  # SKIP blocks the file has against memcached too (none depends on a feature)
        nums = ", ".join(str(n) for n, _ in skipped)
        notes.append(f"test {nums} skipped by the file: {skipped[0][1]}")
    return True, "; ".join(notes) or None, stale


def check_tls(binary):
    """A TLS run proves something only if the harness really uses TLS (see the docstring)."""
    help_text = subprocess.run([str(binary), "-h"], capture_output=True, text=True).stdout
    if "enable-ssl" not in help_text:
        raise SetupError(f"`{binary} -h` does not mention enable-ssl: the harness would not use TLS")
    if subprocess.run(["perl", "-MIO::Socket::SSL", "-e", "1"], capture_output=True).returncode:
        raise SetupError("perl's IO::Socket::SSL is missing (Debian: libio-socket-ssl-perl; "
                         "`make test-deps` installs it)")


def run_file(tree, name, binary, limit, logs, tls=False):
    env = {k: v for k, v in os.environ.items()
           if k not in ("T_MEMD_USE_DAEMON", "SSL_TEST", "VALGRIND_TEST", "VALGRIND_ARGS")}
    env.update(RUN_SASL_TESTS="1", FERROCACHE_BIN=str(binary))
    if tls:
        env["SSL_TEST"] = "1"
    cmd = ["timeout", "-k", "10", str(limit), "perl", name]
    start = time.monotonic()
    p = subprocess.Popen(cmd, cwd=tree, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        try:
            out, err = p.communicate(timeout=limit + 30)
        except subprocess.TimeoutExpired:
            # A daemon the file left behind (in a session of its own) still holds the pipes.
            os.killpg(p.pid, signal.SIGKILL)
            try:
                out, err = p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                out, err = b"", b"(output lost: a process the file started holds the pipes)\n"
    finally:  # whatever the file started and left behind (its group is the one made for it)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    elapsed = time.monotonic() - start
    out = out.decode(errors="replace")
    err = err.decode(errors="replace")
    log = logs / (Path(name).name + (".tls.log" if tls else ".log"))
    log.write_text(f"$ {' '.join(cmd)}  (exit {p.returncode}, {elapsed:.1f}s)\n"
                   f"--- stdout\n{out}--- stderr\n{err}")
    return p.returncode, p.returncode in (124, 137), out, err


def find_binary(arg):
    if arg:
        return Path(arg).resolve()
    if os.environ.get("FERROCACHE_BIN"):
        return Path(os.environ["FERROCACHE_BIN"]).resolve()
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return (target / "release" / "ferrocache").resolve()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="the ferrocache binary (default: $FERROCACHE_BIN, else "
                    "$CARGO_TARGET_DIR or target/, release/ferrocache)")
    default_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") \
        / "ferrocache" / "memcached-src"
    ap.add_argument("--cache", type=Path, default=default_cache,
                    help=f"where memcached's source is fetched and logs kept ({default_cache})")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per file (120)")
    ap.add_argument("--strict", action="store_true",
                    help="count the files of known-failures.txt as failures too")
    ap.add_argument("--tls", action="store_true",
                    help="run every file with SSL_TEST=1 (known failures: known-failures-tls.txt)")
    ap.add_argument("files", nargs="*", help="t/ files to run (default: all of files.txt, then "
                    "tls-files.txt with SSL_TEST=1)")
    args = ap.parse_args()

    try:
        binary = find_binary(args.bin)
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise SetupError(f"no ferrocache binary at {binary}: build it first "
                             "(`make release`) or pass --bin")
        plain = read_list(HERE / "files.txt")
        tls_only = read_list(HERE / "tls-files.txt")
        files = plain + tls_only
        skips = read_skips(HERE / "skip.txt")
        known_list = "known-failures-tls.txt" if args.tls else "known-failures.txt"
        known = read_known(HERE / known_list)
        for name in known:
            if name not in files:
                raise SetupError(f"tests/conformance/{known_list} names {name}, which is not run")
        if args.strict or args.files:
            known = {}
        unknown = [f for f in args.files if f not in files]
        if unknown:
            raise SetupError(f"not in tests/conformance/files.txt or tls-files.txt: {' '.join(unknown)}")
        for name in skips:
            if name not in files:
                raise SetupError(f"tests/conformance/skip.txt names {name}, which is not run")
        runs = [(f, args.tls or f in tls_only) for f in (args.files or files)]
        if any(tls for _, tls in runs):
            check_tls(binary)
        tree = ensure_source(args.cache.resolve())
        missing = [f for f in files if not (tree / f).is_file()]
        if missing:
            raise SetupError(f"memcached's source in {tree} lacks {' '.join(missing)}")
        link_shims(tree)
    except SetupError as e:
        print(f"conformance: setup failed: {e}", file=sys.stderr)
        return 2

    def interrupted(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    logs = args.cache.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    mode = ", every file over TLS" if args.tls else ""
    say(f"conformance: memcached {VERSION} t/ against {binary} ({args.timeout}s per file{mode})")
    passed = failed = known_failed = 0
    stale_all = []
    for name, tls in runs:
        try:
            rc, timed_out, out, err = run_file(tree, name, binary, args.timeout, logs, tls)
        except KeyboardInterrupt:
            say(f"interrupted during {name}: {passed} passed, {failed} failed so far")
            return 130
        ok, reason, stale = judge(name, rc, timed_out, args.timeout, out, err, skips)
        stale_all += [f"{name} {s} (skip.txt)" for s in stale]
        shown = f"{name} [SSL_TEST=1]" if tls else name
        if ok:
            passed += 1
            say(f"PASS {shown}" + (f" ({reason})" if reason else ""))
            if name in known:
                stale_all.append(f"{name} (known-failures.txt: it passes now, remove its entry)")
        elif name in known:
            known_failed += 1
            say(f"KNOWN {shown} ({reason}) [{known[name]}]")
        else:
            failed += 1
            say(f"FAIL {shown} ({reason})")
    for s in stale_all:
        say(f"note: entry no longer needed: {s}")
    known_part = f", {known_failed} known failures" if known_failed else ""
    say(f"{passed} passed, {failed} failed{known_part} (logs in {logs})")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
