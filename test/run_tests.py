#!/usr/bin/python3
"""Runs every test meson knows about and counts TAP results.

Usage: /usr/bin/python3 test/run_tests.py BUILD_DIR

TAP tests count one result per "ok" / "not ok" line ("# SKIP" counts as skipped); a
program that exits non-zero or times out without a "not ok" line adds one failure.
Other tests count one result by exit code (77 = skipped, meson's convention). The last
line is "N passed, N failed" (", N skipped" when some were). Exit status 1 when
anything failed or nothing ran. Standard library only.
"""
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

DEFAULT_TIMEOUT = 60
JOBS = 2
SKIP_EXIT = 77
# Without these UBSan only prints and carries on, so undefined behaviour would pass.
SANITIZER_ENV = {
    'ASAN_OPTIONS': 'halt_on_error=1:print_summary=1',
    'UBSAN_OPTIONS': 'halt_on_error=1:print_stacktrace=1:print_summary=1',
}
TAP_LINE = re.compile(r'^(not ok|ok)\b(.*)$')
SKIP = re.compile(r'#\s*skip\b', re.IGNORECASE)


def load_tests(build_dir):
    try:
        out = subprocess.run(['meson', 'introspect', build_dir, '--tests'],
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        # meson not on PATH: read the file introspect itself reads.
        with open(os.path.join(build_dir, 'meson-info', 'intro-tests.json')) as f:
            out = f.read()
    return json.loads(out)


def run_one(test, build_dir):
    """Runs one test; returns (test, exit code or None on timeout, stdout, stderr, secs)."""
    env = dict(os.environ)
    for k, v in SANITIZER_ENV.items():
        env.setdefault(k, v)
    env.update(test.get('env') or {})
    timeout = test.get('timeout') or 0
    if timeout <= 0:
        timeout = DEFAULT_TIMEOUT
    start = time.monotonic()
    # Files, not pipes: a stray grandchild holding a pipe open cannot hang the runner.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(test['cmd'], cwd=test.get('workdir') or build_dir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
        except OSError as e:
            return test, 127, '', 'cannot start %s: %s\n' % (test['cmd'][0], e), 0.0
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        # The test ran in its own process group: end whatever it left behind
        # (a daemon it started, or the whole test on a timeout).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if code is None:
            proc.wait()
        out.seek(0)
        err.seek(0)
        return (test, code, out.read().decode(errors='replace'), err.read().decode(errors='replace'),
                time.monotonic() - start)


def describe(code):
    if code is None:
        return 'timed out'
    if code < 0:
        try:
            return 'killed by %s' % signal.Signals(-code).name
        except ValueError:
            return 'killed by signal %d' % -code
    return 'exit status %d' % code


def count(test, code, stdout):
    """Returns (passed, failed, skipped, note) for one finished test."""
    passed = failed = skipped = 0
    note = ''
    if test.get('protocol') == 'tap':
        for line in stdout.splitlines():
            m = TAP_LINE.match(line)
            if m and SKIP.search(m.group(2)):
                skipped += 1
            elif m:
                passed += m.group(1) == 'ok'
                failed += m.group(1) == 'not ok'
            elif line.startswith('Bail out!'):
                failed += 1
        if code != 0 and failed == 0:
            failed += 1
            note = describe(code)
    elif code == 0:
        passed = 1
    elif code == SKIP_EXIT:
        skipped = 1
    else:
        failed = 1
        note = describe(code)
    return passed, failed, skipped, note


def show_output(name, stdout, stderr, limit=400):
    print('---- output of %s ----' % name)
    if not stdout.strip() and not stderr.strip():
        print('(no output)')
    for title, text in (('stdout', stdout), ('stderr', stderr)):
        lines = text.rstrip('\n').splitlines()
        if not lines:
            continue
        if len(lines) > limit:
            cut = len(lines) - limit
            lines = lines[:100] + ['[... %d lines left out ...]' % cut] + lines[100 + cut:]
        print('[%s]' % title)
        print('\n'.join(lines))
    print('---- end of %s ----' % name)


def main(argv):
    if len(argv) != 2:
        print('usage: %s BUILD_DIR' % argv[0], file=sys.stderr)
        return 2
    build_dir = os.path.abspath(argv[1])
    tests = load_tests(build_dir)
    # Tests that must run alone (is_parallel: false) run after the pool drains.
    parallel = [t for t in tests if t.get('is_parallel', True)]
    serial = [t for t in tests if not t.get('is_parallel', True)]
    totals = [0, 0, 0]

    def report(result):
        test, code, stdout, stderr, secs = result
        p, f, s, note = count(test, code, stdout)
        totals[0] += p
        totals[1] += f
        totals[2] += s
        if f:
            show_output(test['name'], stdout, stderr)
        print('%s %s: %d passed, %d failed%s%s (%.1fs)' % (
            'FAIL' if f else 'ok  ', test['name'], p, f,
            ', %d skipped' % s if s else '', ', ' + note if note else '', secs), flush=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as pool:
        for result in pool.map(lambda t: run_one(t, build_dir), parallel):
            report(result)
    for t in serial:
        report(run_one(t, build_dir))

    passed, failed, skipped = totals
    print('%d passed, %d failed%s' % (passed, failed, ', %d skipped' % skipped if skipped else ''))
    return 1 if failed or passed + failed == 0 else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
