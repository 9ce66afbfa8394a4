"""The man pages (issue 17): man/lb.8, man/lbctl.8, man/lb.yaml.5.

lb.yaml(5) must not drift from conf/lb.yaml: every key path in one is in
the other, the keys of conf/lb.yaml read from its active and its
commented-out lines alike. Each page renders without a warning, and
lbctl(8) documents exactly the commands of lbctl's usage text. No lb runs
here."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

MAN = os.path.join(ROOT, "man")
PAGES = ["lb.8", "lbctl.8", "lb-healthwatch.8", "lb.yaml.5"]
CONF = os.path.join(ROOT, "conf", "lb.yaml")
LBCTL = os.path.join(ROOT, "scripts", "lbctl")
ENV = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")

KEY = re.compile(r"([a-z_][a-z0-9_]*):(?=\s|$)")
FLOW_KEY = re.compile(r"(?:^|[{,])\s*([a-z_][a-z0-9_]*)\s*:")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def value_of(rest):
    """The value after "key:", without its comment: "" (a mapping or a
    list follows), "{...}" (a flow mapping) or the scalar."""
    rest = rest.strip()
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        return rest if end < 0 else rest[: end + 1]
    if rest.startswith("{"):
        end = rest.find("}")
        return rest if end < 0 else rest[: end + 1]
    cut = re.search(r"(^|\s)#", rest)
    return (rest[: cut.start()] if cut else rest).strip()


def yaml_key_paths(text):
    """Every key path of a YAML file written as conf/lb.yaml is, such as
    "backends[].servers[].weight", from its active lines and from its
    commented-out ones ("    #   alpn: [http/1.1]": "# " taken away, the
    rest keeps its indentation). Items of a list add "[]" to its key.

    A comment line further right than one level below the last key is the
    continuation of a comment at the end of a line above ("# type: none,
    at once)..."), not a key. A key indented below a key with a value (an
    example block under a prose comment) cannot be its child: it is taken
    as the key's sibling."""
    paths = set()
    stack = []  # (indent, path, holds children)
    last_indent = 0
    for raw in text.splitlines():
        line = raw.rstrip()
        body = line.lstrip(" ")
        if not body:
            continue
        col = len(line) - len(body)
        if body.startswith("#"):
            if col > last_indent + 2:
                continue
            rest = body[1:]
            if rest.startswith(" "):
                rest = rest[1:]
            inner = rest.lstrip(" ")
            if not inner or inner.startswith("#"):
                continue
            col += len(rest) - len(inner)
            body = inner
        dash = None
        if body.startswith("- "):
            after = body[2:].lstrip(" ")
            dash, col, body = col, col + len(body) - len(after), after
        m = KEY.match(body)
        if not m:
            continue
        while stack and stack[-1][0] >= (col if dash is None else dash):
            stack.pop()
        while stack and not stack[-1][2]:
            stack.pop()  # a scalar has no children
        if dash is not None:
            parent = stack[-1][1] if stack else ""
            stack.append((dash, parent + "[]", True))
        parent = stack[-1][1] if stack else ""
        path = parent + "." + m.group(1) if parent else m.group(1)
        paths.add(path)
        value = value_of(body[m.end():])
        if value.startswith("{"):
            paths.update(path + "." + k for k in FLOW_KEY.findall(value))
        stack.append((col, path, value == ""))
        last_indent = col
    return paths


def man_key_paths(text):
    """The keys lb.yaml(5) documents: each the bold tag of a .TP entry
    (".TP" then ".B backends[].servers[].weight")."""
    lines = text.splitlines()
    keys = set()
    for prev, line in zip(lines, lines[1:]):
        m = re.match(r"\.B\s+(\S+)\s*$", line)
        if prev.strip() == ".TP" and m:
            keys.add(m.group(1).replace("\\-", "-"))
    return keys


def test_key_paths_are_read_from_active_and_commented_lines():
    text = "\n".join([
        "# lb.yaml: prose, not a key",
        "global:",
        "  grace: 10s               # drain time; a continuation",
        "                           # type: none, at once) is prose",
        "  log:",
        "    level: info",
        "items:",
        "  - name: a              # required",
        "    mode: http",
        "    # To pin, use instead:",
        "    #   mode: tcp",
        "    #   hash: { key: \"header:X\", method: ring }",
        "    # tls:",
        "    #   certificates:      # required",
        "    #                      #   a continuation",
        "    #     - cert: a.pem",
        "    #       key: a.key",
        "    #   alpn: [http/1.1]",
        "    servers:",
        "      - addr: 127.0.0.1:1   # weight: a comment",
        "        weight: 1",
        "      - addr: 127.0.0.1:2",
        "    timeouts:",
        "      idle: 1s",
    ])
    assert yaml_key_paths(text) == {
        "global", "global.grace", "global.log", "global.log.level",
        "items", "items[].name", "items[].mode",
        "items[].hash", "items[].hash.key", "items[].hash.method",
        "items[].tls", "items[].tls.certificates", "items[].tls.certificates[].cert",
        "items[].tls.certificates[].key", "items[].tls.alpn",
        "items[].servers", "items[].servers[].addr", "items[].servers[].weight",
        "items[].timeouts", "items[].timeouts.idle",
    }


def test_lb_yaml_5_documents_exactly_the_keys_of_conf_lb_yaml():
    conf = yaml_key_paths(read(CONF))
    man = man_key_paths(read(os.path.join(MAN, "lb.yaml.5")))
    assert len(conf) > 50, "too few keys found in conf/lb.yaml: %s" % sorted(conf)
    only_conf, only_man = sorted(conf - man), sorted(man - conf)
    assert not only_conf and not only_man, (
        "man/lb.yaml.5 and conf/lb.yaml disagree\n"
        "  in conf/lb.yaml, missing from man/lb.yaml.5: %s\n"
        "  in man/lb.yaml.5, missing from conf/lb.yaml: %s"
        % (", ".join(only_conf) or "none", ", ".join(only_man) or "none"))


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_warnings(page):
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed (Debian package groff-base): cannot render %s" % page)
    path = os.path.join(MAN, page)
    r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", path], capture_output=True, text=True,
                       env=ENV, timeout=60)
    assert r.returncode == 0 and r.stderr == "", "groff on man/%s (exit %d):\n%s" % (page, r.returncode, r.stderr)


@pytest.mark.parametrize("page", PAGES)
def test_page_has_a_whatis_entry(page):
    lexgrog = shutil.which("lexgrog")
    if lexgrog is None:
        pytest.skip("lexgrog is not installed (Debian package man-db): cannot read the NAME of %s" % page)
    r = subprocess.run([lexgrog, os.path.join(MAN, page)], capture_output=True, text=True, env=ENV, timeout=60)
    name = page.rsplit(".", 1)[0]
    assert r.returncode == 0 and '"%s - ' % name in r.stdout, "lexgrog on man/%s:\n%s%s" % (page, r.stdout, r.stderr)


def lbctl_usage_commands():
    """The commands lbctl's usage text lists: an indented word, maybe
    followed by upper-case arguments, then two spaces or the line's end."""
    r = subprocess.run(["sh", LBCTL, "-h"], capture_output=True, text=True, env=ENV, timeout=30)
    commands = set()
    for line in (r.stdout + r.stderr).splitlines():
        m = re.match(r" {1,4}([a-z][a-z0-9-]*)(?: [A-Z][A-Z0-9_.:\[\]]*)*(?: {2,}|$)", line)
        if m and m.group(1) != "lbctl":
            commands.add(m.group(1))
    return commands, r.stdout + r.stderr


def lbctl_page_commands():
    """The tags of the .TP entries of lbctl(8)'s COMMANDS section, first word."""
    commands, section, tag_next = set(), None, False
    for line in read(os.path.join(MAN, "lbctl.8")).splitlines():
        if line.startswith(".SH"):
            section = line[3:].strip().strip('"')
        elif section == "COMMANDS" and line.strip() == ".TP":
            tag_next = True
            continue
        elif tag_next:
            text = re.sub(r"^\.[A-Z]+\s+", "", line)
            text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").replace('"', "")
            if text.split():
                commands.add(text.split()[0])
        tag_next = False
    return commands


def test_lbctl_8_documents_exactly_the_commands_of_lbctl():
    usage, text = lbctl_usage_commands()
    assert usage, "no command found in the usage text of scripts/lbctl -h:\n" + text
    page = lbctl_page_commands()
    assert usage == page, (
        "man/lbctl.8 and scripts/lbctl's usage disagree\n"
        "  in the usage, missing from man/lbctl.8: %s\n"
        "  in man/lbctl.8, missing from the usage: %s"
        % (", ".join(sorted(usage - page)) or "none", ", ".join(sorted(page - usage)) or "none"))
