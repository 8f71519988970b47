"""A real Request Tracker 5 (Debian's package, SQLite, its own Starlet server) on loopback, started by the suite.

Everything lives under one directory: the site config (RT_SITE_CONFIG and RT_SITE_CONFIG_DIR point at files of
our own, so /etc/request-tracker5 is ignored), the SQLite database, Mason's caches and the logs. Mail RT sends
(the AutoReply on create) is appended to a file by a stand-in sendmail. Nothing is installed at run time: the
Debian packages come from `make test`'s system packages. Facts: ../shared/fixtures/rt5/README.md.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port

SETUP = "/usr/sbin/rt-setup-database-5"
RT_SERVER = "/usr/share/request-tracker5/libexec/rt-server"
RT_LIB = "/usr/share/request-tracker5/lib"
PACKAGES = "request-tracker5 rt5-db-sqlite rt5-standalone"
AGENT = "ticketd"
# The queues the tests route between; RT itself brings General (1) and ___Approvals (2).
QUEUES = ("Raw", "Billing", "Misc", "Hardware", "Technical Support")
# What ticketd needs (deploy/rt/README.md lists the same): see queues, read tickets and their comments, change
# queue and priority, comment: granted globally, so a queue a test makes has them. And CreateTicket on a queue
# to move a ticket into it: granted per queue, on QUEUES only.
AGENT_RIGHTS = ("SeeQueue", "ShowTicket", "ShowTicketComments", "ModifyTicket", "CommentOnTicket")
# A queue the agent may see but not move tickets into: `ticketd check` must name it.
NO_CREATE_QUEUE = "Archive"

_TOKEN_SCRIPT = """
use strict; use warnings;
use lib '%s';
use RT; RT::LoadConfig(); RT::Init();
my $user = RT::User->new(RT->SystemUser);
$user->Load($ARGV[0]) or die "no user $ARGV[0]\\n";
my $token = RT::AuthToken->new(RT->SystemUser);
my ($ok, $msg, $string) = $token->Create(Owner => $user->Id, Description => 'ticketd tests');
die "token: $msg\\n" unless $ok;
print "$string\\n";
"""


def missing_reason() -> str | None:
    """Why a real RT cannot be started here (one line naming the Debian packages), or None when it can."""
    for path in (SETUP, RT_SERVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install -y {PACKAGES})"
    if shutil.which("perl") is None:
        return "perl is missing"
    if subprocess.run(["perl", "-MDBD::SQLite", "-e1"], capture_output=True).returncode != 0:
        return f"Perl's DBD::SQLite is missing (apt-get install -y {PACKAGES})"
    return None


class RTError(RuntimeError):
    """RT did not come up or a set-up step failed; the message carries the output and RT's log."""


@dataclass
class RTServer:
    """One running RT under `root`; REST 2 at `url`/REST/2.0, as root (the "human") or as the ticketd agent."""

    root: Path
    port: int
    root_password: str = field(default_factory=lambda: secrets.token_hex(12))
    agent_password: str = field(default_factory=lambda: secrets.token_hex(12))
    agent: str = AGENT
    token: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/REST/2.0"

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.root),
            "RT_SITE_CONFIG": str(self.root / "RT_SiteConfig.pm"),
            "RT_SITE_CONFIG_DIR": str(self.root / "RT_SiteConfig.d"),
        }

    @property
    def mail_log(self) -> Path:
        """What RT mailed (AutoReplies); a comment from ticketd must never show up here."""
        return self.root / "mail.log"

    def start(self, deadline: float = 60) -> None:
        """Fresh database, queues, agent, token; then rt-server until REST 2 answers."""
        clock = time.monotonic()
        self._write_config()
        self._run([SETUP, "--action", "init", "--skip-create", "--root-password-file", str(self.root / "root-pw")])
        self.timings["database"] = round(time.monotonic() - clock, 2)
        self.insert(self._data_file())
        self.token = self._run(["perl", "-e", _TOKEN_SCRIPT % RT_LIB, self.agent]).strip().splitlines()[-1]
        self.timings["data"] = round(time.monotonic() - clock - self.timings["database"], 2)
        log = (self.root / "server.log").open("wb")
        self._proc = subprocess.Popen(
            [RT_SERVER, "--server", "Starlet", "--host", "127.0.0.1", "--port", str(self.port), "--max-workers", "2"],
            cwd=self.root,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        started = time.monotonic()
        self._wait_ready(started + deadline)
        self.timings["server"] = round(time.monotonic() - started, 2)

    def insert(self, datafile: Path, env: Mapping[str, str] | None = None) -> str:
        """Load an initialdata file into the running (or not yet running) RT, as an admin would."""
        return self._run(
            [SETUP, "--action", "insert", "--skip-create", "--datafile", str(datafile)], extra=dict(env or {})
        )

    def stop(self) -> None:
        """SIGTERM to the whole process group (master and workers); never SIGINT (as root it chowns /var/lib)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, 15)
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, 9)
            self._proc.wait()
        self._proc = None

    # -- REST as the human (root) -------------------------------------------------------------------

    def rest(self, method: str, path: str, *, user: str = "root", **kwargs: Any) -> Any:
        """One REST 2 call as root (the human agent) or the ticketd agent; asserts success, returns the JSON."""
        password = self.root_password if user == "root" else self.agent_password
        answer = httpx.request(method, f"{self.api}{path}", auth=(user, password), timeout=30, **kwargs)
        assert answer.status_code < 400, f"{method} {path}: HTTP {answer.status_code}: {answer.text[:500]}"
        return answer.json()

    def new_queue(self, prefix: str) -> str:
        """A queue of its own for one test (the agent's global rights apply; CreateTicket does not)."""
        name = f"{prefix} {secrets.token_hex(3)}"
        self.rest("POST", "/queue", json={"Name": name})
        return name

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-chars:]
        except OSError as error:
            return f"(server.log: {error})"

    # -- set-up ---------------------------------------------------------------------------------------

    def _write_config(self) -> None:
        for name in ("mason", "sessions", "log", "RT_SiteConfig.d"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        sendmail = self.root / "sendmail"
        sendmail.write_text(f"#!/bin/sh\ncat >> {self.mail_log}\n")
        sendmail.chmod(0o755)
        (self.root / "root-pw").write_text(self.root_password + "\n")
        settings = {
            "rtname": "ticketd-test",
            "Organization": "ticketd.test",
            "DatabaseType": "SQLite",
            "DatabaseName": str(self.root / "rt5.db"),
            "WebDomain": "127.0.0.1",
            "WebPort": self.port,
            "WebPath": "",
            "WebBaseURL": self.url,
            "MasonDataDir": str(self.root / "mason"),
            "MasonSessionDir": str(self.root / "sessions"),
            "LogDir": str(self.root / "log"),
            "LogToSyslog": 0,
            "LogToSTDERR": "warning",
            "MailCommand": "sendmailpipe",
            "SendmailPath": str(sendmail),
            "RestrictReferrer": 0,
        }
        lines = [f"Set(${k}, {v if isinstance(v, int) else _perl_string(v)});" for k, v in settings.items()]
        (self.root / "RT_SiteConfig.pm").write_text("\n".join([*lines, "1;", ""]))

    def _data_file(self) -> Path:
        queues = ", ".join(f"{{ Name => {_perl_string(q)} }}" for q in (*QUEUES, NO_CREATE_QUEUE))
        user = (
            f"{{ Name => {_perl_string(self.agent)}, Password => {_perl_string(self.agent_password)}, "
            "EmailAddress => 'ticketd@ticketd.test', RealName => 'ticketd', Privileged => 1 }"
        )
        agent = _perl_string(self.agent)
        acl = ", ".join(
            [f"{{ UserId => {agent}, Right => '{right}' }}" for right in AGENT_RIGHTS]
            + [f"{{ UserId => {agent}, Right => 'CreateTicket', Queue => {_perl_string(q)} }}" for q in QUEUES]
        )
        path = self.root / "ticketd-test-data.pl"
        path.write_text(f"@Queues = ({queues});\n@Users = ({user});\n@ACL = ({acl});\n1;\n")
        return path

    def _run(self, argv: list[str], extra: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            argv, cwd=self.root, env={**self.env, **(extra or {})}, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RTError(f"{' '.join(argv[:3])} exited with {done.returncode}: {(done.stdout + done.stderr)[-3000:]}")
        return done.stdout

    def _wait_ready(self, deadline: float) -> None:
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RTError(f"rt-server exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                answer = httpx.get(f"{self.api}/queues/all", auth=(self.agent, self.agent_password), timeout=10)
                if answer.status_code == 200:
                    return
                last = f"HTTP {answer.status_code}: {answer.text[:300]}"
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.1)
        raise RTError(f"REST 2 at {self.api} did not answer in time: {last}\n{self.log_tail()}")


def _perl_string(value: str) -> str:
    """A single-quoted Perl string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def start_rt(root: Path) -> RTServer:
    """A fresh RT on a free loopback port under `root` (about 4 s); stopped by the caller with `stop()`."""
    server = RTServer(root=root, port=free_port())
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server
