#!/usr/bin/env python3
"""Runs the README's tour as a reader would, against a live gateway on its demo defaults.

Started by Tests/IntegrationTests/ReadmeTourTests.swift, which starts the gateway and checks the
database and the audit trail afterwards. This script reads the section "A tour" of README.md and, in
real terminals (pseudo-terminals driven with pexpect):

- runs every line of its `sh` blocks in an interactive bash, after the `export PATH=…` line the
  gateway's banner printed; a `psql …` line opens the psql session the transcript blocks type into,
  and later shell lines run in a second terminal;
- answers the prompts the commands ask at a terminal (passwords from the banner, codes computed from
  the secret `gatehouse mfa enroll` printed, Enter where the README says so);
- types each `demo=> …` line of the transcript blocks into psql and holds what psql printed to the
  lines the README shows under it; a statement still running at the end of its block (held for a code,
  or sleeping) is left open, and a block without a prompt is the rest of its output;
- holds what a shell command printed to the `#   …` lines under it (in order, other lines between).

The README's ids, timestamps and counts are examples: each id stands for the one the gateway gave
(learned where it first appears, substituted in every later command), times and counts match any. The
test's own ports stand in for 6432 and 7070 (GATEHOUSE_SERVER points the CLI at the test's gateway).

Environment: TOUR_README, TOUR_BANNER (the banner's text), TOUR_DEMO_PASSWORD, TOUR_ADMIN_PASSWORD,
TOUR_PG_PORT, TOUR_HTTP_PORT, TOUR_HOME (an empty directory, the reader's $HOME). Exits 1 at the first
difference, saying what the README shows and what the terminal printed.
"""
import base64
import hashlib
import hmac
import os
import re
import struct
import sys
import time
import urllib.parse

import pexpect

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")
SHELL_PROMPT = r"\[tour (\d+)\]\$ "
PSQL_PROMPT = r"demo=> "
ID = re.compile(r"\b(?:req-[0-9a-f]{8,}|(?=[0-9a-f]*[0-9])[0-9a-f]{8,})\b")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
TIMEOUT = 60


class TourFailed(Exception):
    pass


def log(text):
    print(text, flush=True)


def tour_blocks(readme):
    """The fenced blocks of the tour section: ('sh', lines) and ('out', lines)."""
    lines = readme.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("### A tour"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    blocks, current, kind = [], None, None
    for line in lines[start:end]:
        if line.startswith("```"):
            if current is None:
                kind, current = ("sh" if line.strip() == "```sh" else "out"), []
            else:
                blocks.append((kind, current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


class Ids:
    """The README's example ids and what the gateway gave in their place."""

    def __init__(self):
        self.actual = {}

    def pattern(self, expected, loose_numbers):
        """A regex for a line the README shows: ids captured, times and `…` open, spaces loose."""
        expected = expected.strip()
        pieces, names, position = [], [], 0
        tokens = sorted(
            [(m.start(), m.end(), "id", m.group(0)) for m in ID.finditer(expected)]
            + [(m.start(), m.end(), "time", m.group(0)) for m in TIMESTAMP.finditer(expected)])
        for start, end, kind, text in tokens:
            if start < position:
                continue
            pieces.append(self.literal(expected[position:start], loose_numbers))
            if kind == "time":
                pieces.append(r"\S+")
            elif text in self.actual:
                pieces.append(re.escape(self.actual[text]))
            else:
                pieces.append(r"((?:req-)?[0-9a-f]+)")
                names.append(text)
            position = end
        pieces.append(self.literal(expected[position:], loose_numbers))
        return re.compile("".join(pieces)), names

    @staticmethod
    def literal(text, loose_numbers):
        out = []
        for part in re.split(r"(…|\s+|\d+)", text):
            if part == "…":
                out.append(r".*?")
            elif part and part.isspace():
                out.append(r"\s+")
            elif part.isdigit() and loose_numbers:
                out.append(r"\d+")
            else:
                out.append(re.escape(part))
        return "".join(out)

    def learn(self, names, match):
        for name, value in zip(names, match.groups()):
            self.actual[name] = value

    def substitute(self, command):
        return ID.sub(lambda m: self.actual.get(m.group(0), m.group(0)), command)


def totp(secret, step):
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


class Authenticator:
    """The reader's authenticator app: a fresh code each time (a code is accepted once)."""

    def __init__(self):
        self.secret = None
        self.last_step = -1

    def code(self):
        if self.secret is None:
            raise TourFailed("a code was asked for before `gatehouse mfa enroll` printed a secret")
        while int(time.time()) // 30 <= self.last_step:
            time.sleep(0.5)
        self.last_step = int(time.time()) // 30
        return totp(self.secret, self.last_step)


class Terminal:
    def __init__(self, name, environment, banner_export):
        self.name = name
        self.child = pexpect.spawn(
            "bash", ["--norc", "--noprofile", "--noediting", "-i"], env=environment, encoding="utf-8",
            dimensions=(60, 200), timeout=TIMEOUT)
        self.child.sendline("PS1='[tour $?]$ '")
        self.child.expect(SHELL_PROMPT)
        self.run(banner_export, answers=lambda prompt, output: None)

    def run(self, command, answers):
        """Runs a shell line, answering prompts; returns its output lines and exit status."""
        log(f"[{self.name}]$ {command}")
        self.child.sendline(command)
        self.child.expect_exact(command)
        output = ""
        prompts = [SHELL_PROMPT, pexpect.EOF] + PROMPTS
        while True:
            which = self.child.expect(prompts)
            output += self.child.before
            if which == 0:
                status = int(self.child.match.group(1))
                break
            if which == 1:
                raise TourFailed(f"the shell of terminal {self.name} ended")
            reply = answers(self.child.after, output)
            output += self.child.after
            self.child.sendline(reply)
            self.child.expect_exact("\n")
        lines = clean(output)
        for line in lines:
            log(f"  | {line}")
        log(f"  (exit status {status})")
        return lines, status


PROMPTS = [
    r"Password for (\S+) at \S+: ",
    r"Your password: ",
    r"Code from your authenticator \(Enter if you have none\): ",
    r"First code from the app, to confirm: ",
    r"Code from your authenticator for challenge \S+: ",
    r"Code from your current authenticator: ",
]


def clean(text):
    text = ANSI.sub("", text).replace("\r", "")
    return [line.rstrip() for line in text.split("\n") if line.strip()]


class Tour:
    def __init__(self):
        self.ids = Ids()
        self.authenticator = Authenticator()
        self.passwords = {"demo": os.environ["TOUR_DEMO_PASSWORD"], "admin": os.environ["TOUR_ADMIN_PASSWORD"]}
        self.pg_port = os.environ["TOUR_PG_PORT"]
        self.http_port = os.environ["TOUR_HTTP_PORT"]
        banner = os.environ["TOUR_BANNER"]
        found = re.search(r"^The gatehouse command, in another terminal: (export PATH=.*)$", banner, re.M)
        if not found:
            raise TourFailed("the banner prints no `export PATH=…` line")
        self.export = found.group(1)
        home = os.environ["TOUR_HOME"]
        # The reader's environment: their own $HOME, no gatehouse on PATH until the banner's line.
        self.environment = {
            "HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "TERM": "dumb", "LANG": "C.UTF-8",
            "GATEHOUSE_SERVER": f"http://127.0.0.1:{self.http_port}"}
        self.terminals = [Terminal("1", self.environment, self.export)]
        self.psql = None
        self.pending = None
        self.last_user = "demo"

    # Shell lines

    def answer(self, prompt, output):
        secret = re.search(r"^\s*secret: ([A-Z2-7]+)\s*$", ANSI.sub("", output).replace("\r", ""), re.M)
        if secret:
            self.authenticator.secret = secret.group(1)
        found = re.match(PROMPTS[0], prompt)
        if found:
            self.last_user = found.group(1)
            return self.passwords[found.group(1)]
        if re.match(PROMPTS[1], prompt):
            return self.passwords["demo"]
        if re.match(PROMPTS[2], prompt):
            # The README: "Enter at the code" (no second factor yet), else the authenticator's code.
            return self.authenticator.code() if self.last_user == "demo" and self.authenticator.secret else ""
        return self.authenticator.code()

    def shell_block(self, lines):
        commands = []
        for line in lines:
            if line.startswith("#   ") and commands:
                commands[-1][1].append(line[4:])
            elif line.strip() and not line.startswith("#"):
                commands.append((line, []))
        for command, expected in commands:
            self.shell_line(command, expected)

    def shell_line(self, command, expected):
        command = self.ids.substitute(command)
        command = command.replace("port=6432", f"port={self.pg_port}").replace("127.0.0.1:7070", f"127.0.0.1:{self.http_port}")
        if command.startswith("psql "):
            return self.open_psql(command)
        if self.psql is not None and len(self.terminals) == 1:
            self.terminals.append(Terminal("2", self.environment, self.export))
        terminal = self.terminals[-1]
        lines, status = terminal.run(command, self.answer)
        if status != 0:
            raise TourFailed(f"`{command}` failed with status {status}:\n" + "\n".join(lines))
        self.expect_in_order(command, expected, lines)

    def expect_in_order(self, command, expected, lines):
        position = 0
        for line in expected:
            pattern, names = self.ids.pattern(line, loose_numbers=True)
            while position < len(lines) and not pattern.search(lines[position]):
                position += 1
            if position == len(lines):
                raise TourFailed(
                    f"`{command}`: the README shows\n  {line}\nbut the terminal printed:\n" + "\n".join(lines))
            self.ids.learn(names, pattern.search(lines[position]))
            position += 1

    # psql

    def open_psql(self, command):
        terminal = self.terminals[0]
        log(f"[{terminal.name}]$ {command}")
        terminal.child.sendline(command)
        terminal.child.expect_exact(command)
        terminal.child.expect(PSQL_PROMPT)
        for line in clean(terminal.child.before):
            log(f"  | {line}")
        self.psql = terminal.child

    def transcript_block(self, lines):
        if self.psql is None:
            raise TourFailed("a psql transcript before any `psql` command")
        steps = []  # (statement or None for the pending one's output, expected lines)
        for line in lines:
            if line.startswith(PSQL_PROMPT):
                steps.append((line[len(PSQL_PROMPT):], []))
            elif not steps:
                steps.append((None, [line]))
            else:
                steps[-1][1].append(line)
        for index, (statement, expected) in enumerate(steps):
            last = index == len(steps) - 1
            if statement is None:
                if self.pending is None:
                    raise TourFailed(f"the README shows output of no running statement: {expected}")
                statement, self.pending = self.pending, None
                self.statement_output(statement, expected, last, typed=False)
            else:
                if self.pending is not None:
                    raise TourFailed(f"`{self.pending}` is still running when the README types `{statement}`")
                self.statement_output(statement, expected, last, typed=True)

    def statement_output(self, statement, expected, last, typed):
        child = self.psql
        if typed:
            log(f"demo=> {statement}")
            child.sendline(statement)
            child.expect_exact(statement)
        got = []
        while len(got) < len(expected):
            which = child.expect([r"\n", PSQL_PROMPT, pexpect.EOF, pexpect.TIMEOUT], timeout=TIMEOUT)
            got += clean(child.before)
            if which != 0:
                break
        for line in got:
            log(f"  | {line}")
        if len(got) < len(expected):
            raise TourFailed(f"`{statement}`: the README shows\n" + "\n".join(expected) + "\nbut psql printed:\n" + "\n".join(got))
        for want, line in zip(expected, got):
            pattern, names = self.ids.pattern(want, loose_numbers=False)
            match = pattern.fullmatch(line.strip())
            if not match:
                raise TourFailed(f"`{statement}`: the README shows\n  {want}\nbut psql printed\n  {line}")
            self.ids.learn(names, match)
        # Done when the prompt comes back; at the end of a block a statement may still run (held, sleeping).
        which = child.expect([PSQL_PROMPT, pexpect.EOF, pexpect.TIMEOUT], timeout=3 if last else TIMEOUT)
        extra = clean(child.before)
        for line in extra:
            log(f"  | {line}")
        if extra:
            raise TourFailed(f"`{statement}`: psql printed more than the README shows:\n" + "\n".join(extra))
        if which == 2:
            if not last:
                raise TourFailed(f"`{statement}` did not finish, yet the README types more after it")
            log("  (still running)")
            self.pending = statement
        elif which == 1:
            raise TourFailed(f"`{statement}`: psql ended")

    def run(self, readme):
        blocks = tour_blocks(readme)
        if len(blocks) < 8:
            raise TourFailed(f"the tour has {len(blocks)} blocks: not the README's tour")
        for kind, lines in blocks:
            if kind == "sh":
                self.shell_block(lines)
            else:
                self.transcript_block(lines)
        if self.pending is not None:
            raise TourFailed(f"`{self.pending}` still runs at the end of the tour")
        log(f"tour done: {len(blocks)} blocks, ids {self.ids.actual}")


def main():
    with open(os.environ["TOUR_README"], encoding="utf-8") as file:
        readme = file.read()
    try:
        Tour().run(readme)
    except (TourFailed, pexpect.ExceptionPexpect) as error:
        log(f"TOUR FAILED: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
