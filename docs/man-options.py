#!/usr/bin/env python3
"""The OPTIONS of docs/wsreactor.1, made from `wsreactor --help`.

    docs/man-options.py BINARY                 print the roff of every option
    docs/man-options.py BINARY --write PAGE    replace the generated block of PAGE
    docs/man-options.py BINARY --check PAGE    exit 1, naming each option PAGE misses
                                               (its flag, environment variable or default)

The rest of the man page is written by hand; only the text between the lines
'.\\" BEGIN OPTIONS' and '.\\" END OPTIONS' comes from here (`make man` rewrites it).
test/integration/test_install.py runs the check, so an option added to the daemon
without a man page entry fails `make test`.
"""
import re
import subprocess
import sys

BEGIN = '.\\" BEGIN OPTIONS'
END = '.\\" END OPTIONS'

_OPT = re.compile(r'^  (?:--([a-z0-9-]+)|\(no flag\) ([a-z0-9-]+)) +(.*)$')
_FLAG_ARG = re.compile(r'^  --([a-z0-9-]+) (\S+) +(.*)$')
_ENV = re.compile(r'^ {20,}env (WSR_[A-Z0-9_]+)$')
_DEFAULT = re.compile(r'\((?:d|D)efault:? ([^()]*(?:\([^()]*\)[^()]*)*)\)|Default: (.*?)\.?$')


def parse_help(text):
    """Options of --help, in its order: dicts with flag (None for env-only settings),
    key (the config file's name), metavar, env, help and default (None when unsaid)."""
    lines = text.splitlines()
    opts = []
    for i, line in enumerate(lines):
        env = _ENV.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not env:
            continue
        m = _FLAG_ARG.match(line)
        if m:
            key, metavar, desc = m.group(1), m.group(2), m.group(3)
            flag = '--' + key
        else:
            m = _OPT.match(line)
            if not m or not m.group(2):
                raise ValueError('cannot read this --help line: %r' % line)
            key, metavar, desc, flag = m.group(2), None, m.group(3), None
        d = _DEFAULT.search(desc)
        default = (d.group(1) or d.group(2)).strip() if d else None
        opts.append({'flag': flag, 'key': key, 'metavar': metavar, 'env': env.group(1),
                     'help': desc.strip(), 'default': default})
    if not opts:
        raise ValueError('no options found in --help')
    return opts


def run_help(binary):
    return subprocess.run([binary, '--help'], check=True, capture_output=True,
                          text=True, timeout=30).stdout


def roff_escape(s):
    s = s.replace('\\', '\\e').replace('-', '\\-')
    # ASCII only: groff without preconv warns about anything else.
    s = ''.join(c if ord(c) < 128 else '\\[u%04X]' % ord(c) for c in s)
    if s[:1] in ('.', "'"):
        s = '\\&' + s
    return s


def roff(opts):
    out = []
    for o in opts:
        out.append('.TP')
        if o['flag']:
            out.append('.BI %s " %s"' % (roff_escape(o['flag']), roff_escape(o['metavar'])))
        else:
            out.append('.B %s' % o['env'])
        text = o['help']
        # Sentence case for the man page; the text stays that of --help otherwise.
        out.append(roff_escape(text[:1].upper() + text[1:]) + ('' if text.endswith('.') else '.'))
        if o['flag'] and o['key'] == 'config':
            out.append('Environment:')
            out.append('.BR %s ;' % o['env'])
            out.append('not in the config file itself.')
        elif o['flag']:
            out.append('Environment:')
            out.append('.BR %s ;' % o['env'])
            out.append('config file key:')
            out.append('.BR %s .' % roff_escape(o['key']))
        else:
            out.append('No flag: only the environment or the config file key')
            out.append('.BR %s .' % roff_escape(o['key']))
    return '\n'.join(out) + '\n'


def plain(roff_text):
    """Roff source to comparable text: escapes and font requests removed."""
    t = roff_text.replace('\\-', '-').replace('\\e', '\\').replace('\\&', '')
    t = re.sub(r'\\\[u([0-9A-F]{4})\]', lambda m: chr(int(m.group(1), 16)), t)
    t = re.sub(r'\\f[BIRP]', '', t)
    t = re.sub(r'^\.(?:B|I|BI|BR|IR|RB|RI|IB) ', '', t, flags=re.M)
    return t.replace('"', '')


def check(opts, page_text):
    """Problems (strings) with PAGE's OPTIONS section: each option must have its own .TP
    entry naming its flag, its environment variable and its default."""
    problems = []
    sec = re.search(r'^\.SH OPTIONS$(.*?)^\.SH ', page_text, re.M | re.S)
    if not sec:
        return ['no OPTIONS section']
    entries = {}
    for chunk in sec.group(1).split('\n.TP\n')[1:]:
        first, _, body = chunk.partition('\n')
        head = plain(first).split()
        if head:
            entries[head[0]] = plain(body)
    for o in opts:
        name = o['flag'] or o['env']
        body = entries.get(name)
        if body is None:
            problems.append('%s: no entry' % name)
            continue
        flat = ' '.join(body.split())
        if o['flag'] and o['env'] not in flat:
            problems.append('%s: environment variable %s not named' % (name, o['env']))
        if o['default'] and ' '.join(o['default'].split()) not in flat:
            problems.append('%s: default %r not given' % (name, o['default']))
    for flag in ('--help', '--version'):
        if flag not in entries:
            problems.append('%s: no entry' % flag)
    return problems


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] not in ('--write', '--check')):
        sys.stderr.write(__doc__)
        return 2
    opts = parse_help(run_help(argv[1]))
    if len(argv) == 2:
        sys.stdout.write(roff(opts))
        return 0
    page = argv[3]
    with open(page) as f:
        text = f.read()
    if argv[2] == '--check':
        problems = check(opts, text)
        for p in problems:
            print('%s: %s' % (page, p))
        return 1 if problems else 0
    # The markers are whole lines (the page's first comment names them too).
    b, e = text.find('\n' + BEGIN + '\n'), text.find('\n' + END + '\n')
    if b < 0 or e < b:
        print('%s: no %r ... %r block' % (page, BEGIN, END), file=sys.stderr)
        return 1
    b += len(BEGIN) + 2
    with open(page, 'w') as f:
        f.write(text[:b] + roff(opts) + text[e + 1:])
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
