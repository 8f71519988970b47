"""A real Znuny 7.1.7 (PostgreSQL + Apache/mod_perl) on loopback, built from ../shared/znuny by the suite.

It does what ../shared/znuny/reference-setup.sh does, but with files of its own under one directory
(its own PostgreSQL cluster, its own httpd.conf) on free ports: nothing is written under /etc and no
system account is created. PostgreSQL runs as `postgres`, Apache's children and Znuny's console as
`www-data`, so it has to be started as root (Znuny's console refuses to run as root itself).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import paths
from tests.support.servers import free_port, has_user, pg_bin

SHARED = paths.SHARED / "znuny"
TARBALL = SHARED / "znuny-7.1.7.tar.xz"
APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
ZNUNY_USER = "www-data"
PG_ACCOUNT = "postgres"
AGENT = "agent1"
PATH_PREFIX = "znuny"
# Queues the tests route into (Postmaster, Raw, Junk and Misc come with the initial insert); the order gives
# Hardware, Billing and Technical Support the QueueIDs 5-7 they have in the 7.0.19 recordings (Restricted: 8).
QUEUES = ("Raw", "Junk", "Misc", "Hardware", "Billing", "Technical Support")
_APACHE_MODULES = (
    "mpm_prefork",
    "authz_core",
    "alias",
    "mime",
    "dir",
    "env",
    "headers",
    "deflate",
    "filter",
    "version",
    "setenvif",
    "log_config",
    "perl",
)


def missing_reason() -> str | None:
    """Why a real Znuny cannot be started here (one line naming the Debian package), or None when it can."""
    if os.geteuid() != 0:
        return "starting Znuny needs root (PostgreSQL runs as postgres, Apache and Znuny as www-data)"
    if not TARBALL.is_file():
        return f"the Znuny release {TARBALL} is missing"
    if not os.access(APACHE, os.X_OK):
        return f"{APACHE} is missing (apt-get install -y apache2)"
    if not (MODULES / "mod_perl.so").is_file():
        return f"{MODULES / 'mod_perl.so'} is missing (apt-get install -y libapache2-mod-perl2)"
    if pg_bin("initdb") is None or pg_bin("pg_ctl") is None:
        return "PostgreSQL's initdb/pg_ctl are missing (apt-get install -y postgresql-15)"
    if shutil.which("psql") is None:
        return "psql is missing (apt-get install -y postgresql-client-15)"
    if shutil.which("runuser") is None:
        return "runuser is missing (apt-get install -y util-linux)"
    for account, package in ((ZNUNY_USER, "base-passwd"), (PG_ACCOUNT, "postgresql-15")):
        if not has_user(account):
            return f"the {account!r} account is missing (apt-get install -y {package})"
    return None


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as error:
        return f"({path}: {error})"


class ZnunyError(RuntimeError):
    """Znuny did not come up or a console command failed; the message carries the output (and server logs)."""


@dataclass
class ZnunyServer:
    """One running Znuny under `root`: REST at `url`/znuny/nph-genericinterface.pl/Webservice/<name>."""

    root: Path
    http_port: int
    pg_port: int
    password: str
    db_password: str
    webservices: dict[str, Path] = field(default_factory=dict)
    user: str = AGENT
    path_prefix: str = PATH_PREFIX
    timings: dict[str, float] = field(default_factory=dict)
    _apache: subprocess.Popen[bytes] | None = None
    _daemon: subprocess.Popen[bytes] | None = None
    _pg_started: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def home(self) -> Path:
        return self.root / "znuny"

    @property
    def db_url(self) -> str:
        return f"postgresql://znuny:{self.db_password}@127.0.0.1:{self.pg_port}/znuny"

    def base_url(self, webservice: str) -> str:
        """The REST base of one imported web service (routes are appended to it)."""
        return f"{self.url}/{self.path_prefix}/nph-genericinterface.pl/Webservice/{webservice}"

    def console(self, *args: str, timeout: float = 120) -> str:
        """Run bin/znuny.Console.pl as www-data (Znuny refuses root); raise with its output on failure."""
        command = ["runuser", "-u", ZNUNY_USER, "--", "perl", "bin/znuny.Console.pl", *args, "--no-ansi"]
        done = subprocess.run(
            command, cwd=self.home, capture_output=True, text=True, timeout=timeout, env=_console_env(), check=False
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-3000:]
            raise ZnunyError(f"znuny.Console.pl {' '.join(args)} failed ({done.returncode}): {output}")
        return done.stdout

    def perl(self, code: str, *args: str, timeout: float = 60) -> str:
        """Run Perl code with Znuny's libraries as www-data in its home, as its own bin/ scripts do; raise on failure.

        `$Kernel::OM` is set up; `@ARGV` holds args. For what neither REST nor the console can do (e.g. run
        one invoker the way the scheduler does).
        """
        prelude = "use lib '.'; use lib 'Kernel/cpan-lib'; use lib 'Custom'; use Kernel::System::ObjectManager; "
        prelude += "local $Kernel::OM = Kernel::System::ObjectManager->new(); "
        command = ["runuser", "-u", ZNUNY_USER, "--", "perl", "-e", prelude + code, *args]
        done = subprocess.run(
            command, cwd=self.home, capture_output=True, text=True, timeout=timeout, env=_console_env(), check=False
        )
        if done.returncode != 0:
            raise ZnunyError(f"perl failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-3000:]}")
        return done.stdout

    def psql(self, sql: str) -> str:
        """Run SQL as the znuny database user (for checks a test cannot make through REST)."""
        return _psql(self.pg_port, "znuny", self.db_password, "-d", "znuny", "-A", "-t", "-c", sql, cwd=self.root)

    def logs(self) -> str:
        """The tails of Apache's error log and PostgreSQL's log, for error messages."""
        return (
            f"--- apache error.log ---\n{_tail(self.root / 'apache' / 'error.log')}\n"
            f"--- postgresql.log ---\n{_tail(self.root / 'pg' / 'server.log')}"
        )

    def start_daemon(self) -> None:
        """Start Znuny's own daemon (bin/znuny.Daemon.pl, as www-data): its scheduler runs asynchronous invokers.

        In the foreground of a process group of its own, so stop_daemon can end it and every module it forked.
        Its scheduler picks up tasks queued before it started, too.
        """
        if self._daemon is not None and self._daemon.poll() is None:
            return
        log = (self.root / "daemon.log").open("ab")
        command = ["runuser", "-u", ZNUNY_USER, "--", "perl", "bin/znuny.Daemon.pl", "start", "--foreground"]
        self._daemon = subprocess.Popen(
            command, cwd=self.home, stdout=log, stderr=subprocess.STDOUT, env=_console_env(), start_new_session=True
        )
        log.close()

    def stop_daemon(self) -> None:
        """Stop the daemon started by start_daemon (and the modules it forked); safe to call twice."""
        daemon, self._daemon = self._daemon, None
        if daemon is None:
            return
        if daemon.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGTERM)  # the daemon stops its modules, then exits
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # no module may outlive the daemon
            os.killpg(daemon.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop Znuny's daemon (if started), Apache (and its children) and PostgreSQL; safe to call twice."""
        self.stop_daemon()
        apache, self._apache = self._apache, None
        if apache is not None and apache.poll() is None:
            apache.terminate()  # SIGTERM: the prefork parent kills its children and waits for them
            try:
                apache.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(apache.pid, signal.SIGKILL)
                apache.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):  # no prefork child may outlive its parent
                os.killpg(apache.pid, signal.SIGKILL)
        if self._pg_started:
            self._pg_started = False
            data = str(self.root / "pg" / "data")
            subprocess.run(
                [*_AS_PG, pg_bin("pg_ctl") or "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )


_AS_PG = ("runuser", "-u", PG_ACCOUNT, "--")


def _psql(port: int, user: str, password: str, *args: str, cwd: Path) -> str:
    """psql over TCP with a password (the cluster has no trust auth), stopping at the first error."""
    command = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-X", "-q", "-v", "ON_ERROR_STOP=1", *args]
    return _run(command, cwd=cwd, env={**os.environ, "PGPASSWORD": password})


def _console_env() -> dict[str, str]:
    """A clean environment for www-data: root's HOME is not writable for it."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}


def _run(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-3000:]
        raise ZnunyError(f"{' '.join(command)} failed ({done.returncode}): {output}")
    return done.stdout


def _traversable(root: Path) -> None:
    """www-data and postgres must reach `root`: open it and every parent below the system temp dir's parent."""
    root.chmod(0o755)
    stop_at = Path(tempfile.gettempdir()).resolve().parent
    for parent in root.resolve().parents:
        if parent == stop_at or parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)


def _config_pm(home: Path, db_password: str, pg_port: int) -> None:
    """Kernel/Config.pm from the .dist, edited like reference-setup.sh (plus Home, which the .dist pins to /opt)."""
    text = (home / "Kernel" / "Config.pm.dist").read_text()
    mysql_dsn = '"DBI:mysql:database=$Self->{Database};host=$Self->{DatabaseHost};"'
    pg_dsn = f'"DBI:Pg:dbname=$Self->{{Database}};host=$Self->{{DatabaseHost}};port={pg_port};"'
    edits = {
        "$Self->{DatabasePw} = 'some-pass';": f"$Self->{{DatabasePw}} = '{db_password}';",
        f"$Self->{{DatabaseDSN}} = {mysql_dsn};": f"$Self->{{DatabaseDSN}} = {pg_dsn};",
        "$Self->{Home} = '/opt/znuny';": f"$Self->{{Home}} = '{home}';",
        "# $DIBI$": "# $DIBI$\n"
        "    $Self->{'SecureMode'} = 1;\n"
        "    $Self->{'SystemID'} = 10;\n"
        "    $Self->{'FQDN'} = '127.0.0.1';\n"
        "    $Self->{'CheckMXRecord'} = 0;\n"
        "    $Self->{'CheckEmailAddresses'} = 0;\n"
        "    $Self->{'OTRSTimeZone'} = 'UTC';\n"
        # A test helpdesk sends no mail: notifications queued by the tests never reach a mailer, even while
        # Znuny's daemon (start_daemon) runs its every-minute MailQueueSend.
        "    $Self->{'SendmailModule'} = 'Kernel::System::Email::DoNotSendEmail';\n",
    }
    for old, new in edits.items():
        if old not in text:
            raise ZnunyError(f"Kernel/Config.pm.dist has no line {old!r} to edit")
        text = text.replace(old, new)
    (home / "Kernel" / "Config.pm").write_text(text)


def _httpd_conf(root: Path, home: Path, port: int) -> Path:
    """An httpd.conf of our own (loopback, prefork, logs and runtime files under root/apache)."""
    apache = root / "apache"
    (apache / "run").mkdir(parents=True)
    # Znuny's include and startup script name /opt/znuny: point them at this tree.
    include = (home / "scripts" / "apache2-httpd.include.conf").read_text()
    include = "\n".join(line for line in include.splitlines() if not line.strip().startswith("CustomLog"))
    startup = (home / "scripts" / "apache2-perl-startup.pl").read_text().replace("/opt/znuny", str(home))
    (apache / "perl-startup.pl").write_text(startup)
    include = include.replace("/opt/znuny/scripts/apache2-perl-startup.pl", str(apache / "perl-startup.pl"))
    include = include.replace("/opt/znuny", str(home))
    (apache / "znuny.conf").write_text(include + "\n")
    built_in = _run([APACHE, "-l"], cwd=root)  # Debian compiles in log_config and version: loading them fails
    modules = "\n".join(
        f"LoadModule {name}_module {MODULES}/mod_{name}.so"
        for name in _APACHE_MODULES
        if f"mod_{name}.c" not in built_in
    )
    conf = apache / "httpd.conf"
    conf.write_text(
        f"""ServerRoot /etc/apache2
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
{modules}
User {ZNUNY_USER}
Group {ZNUNY_USER}
PidFile {apache}/httpd.pid
DefaultRuntimeDir {apache}/run
Mutex file:{apache}/run default
ErrorLog {apache}/error.log
LogLevel warn
LogFormat "%h %t \\"%r\\" %>s %b %D" timed
CustomLog {apache}/access.log timed
TypesConfig /etc/mime.types
StartServers 2
MinSpareServers 1
MaxSpareServers 4
MaxRequestWorkers 8
ServerLimit 8
# Debian's defaults (apache2.conf): what an admin's Znuny answers with, idle connections included.
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 5
Timeout 300
Include {apache}/znuny.conf
"""
    )
    return conf


def start_znuny(root: Path, webservices: dict[str, Path]) -> ZnunyServer:
    """Unpack, configure and start Znuny under `root` (an empty directory) with these web services imported."""
    root.mkdir(parents=True, exist_ok=True)
    _traversable(root)
    server = ZnunyServer(
        root=root,
        http_port=free_port(),
        pg_port=free_port(),
        password=secrets.token_urlsafe(12),
        db_password=secrets.token_hex(12),
        webservices=dict(webservices),
    )
    atexit.register(server.stop)
    started = time.monotonic()
    try:
        _start(server)
    except (ZnunyError, subprocess.SubprocessError, OSError) as error:
        server.stop()
        raise ZnunyError(f"Znuny did not start: {error}\n{server.logs()}") from error
    server.timings["total"] = time.monotonic() - started
    return server


def _start(server: ZnunyServer) -> None:
    root, home = server.root, server.home
    step = _Stopwatch(server.timings)

    home.mkdir()
    _run(["tar", "-xJf", str(TARBALL), "--strip-components=1", "-C", str(home)], cwd=root)
    for sub in ("tmp", "log", "article", "spool", "sessions", "run", "packages"):
        (home / "var" / sub).mkdir(parents=True, exist_ok=True)
    _config_pm(home, server.db_password, server.pg_port)
    step("unpack")

    _start_postgres(server)
    step("postgres")
    _load_schema(server)
    step("schema")

    _run(["perl", "bin/znuny.SetPermissions.pl", f"--znuny-user={ZNUNY_USER}", f"--web-group={ZNUNY_USER}"], cwd=home)
    step("permissions")
    server.console("Maint::Config::Rebuild", timeout=300)
    step("config-rebuild")

    _setup_helpdesk(server)
    step("console")

    _start_apache(server)
    step("apache")
    _wait_ready(server, time.monotonic() + 60)
    step("ready")


class _Stopwatch:
    """Records how long each start-up step took (server.timings), to see what to make faster."""

    def __init__(self, into: dict[str, float]) -> None:
        self._into = into
        self._last = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self._into[name] = round(now - self._last, 2)
        self._last = now


def _start_postgres(server: ZnunyServer) -> None:
    pg = server.root / "pg"
    data, sock = pg / "data", pg / "sock"
    sock.mkdir(parents=True)
    admin_password = secrets.token_hex(12)
    pwfile = pg / "pwfile"
    pwfile.write_text(admin_password + "\n")
    shutil.chown(pg, PG_ACCOUNT, PG_ACCOUNT)
    shutil.chown(sock, PG_ACCOUNT, PG_ACCOUNT)
    shutil.chown(pwfile, PG_ACCOUNT, PG_ACCOUNT)
    pwfile.chmod(0o600)
    initdb = [pg_bin("initdb") or "initdb", "-D", str(data), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"]
    auth = ["-A", "scram-sha-256", f"--pwfile={pwfile}", "--no-sync", "--no-instructions"]
    _run([*_AS_PG, *initdb, *auth], cwd=pg)
    pwfile.unlink()
    # A throwaway cluster: durability off, which makes the schema load and every test write cheaper.
    options = (
        f"-c listen_addresses=127.0.0.1 -p {server.pg_port} -k {sock} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    server._pg_started = True
    pg_ctl = [pg_bin("pg_ctl") or "pg_ctl", "-D", str(data), "-l", str(pg / "server.log"), "-o", options]
    _run([*_AS_PG, *pg_ctl, "-w", "-t", "60", "start"], cwd=pg)
    create_user = f"CREATE USER znuny WITH PASSWORD '{server.db_password}'"
    _psql(server.pg_port, "postgres", admin_password, "-c", create_user, cwd=pg)
    _psql(server.pg_port, "postgres", admin_password, "-c", "CREATE DATABASE znuny OWNER znuny ENCODING 'UTF8'", cwd=pg)


def _load_schema(server: ZnunyServer) -> None:
    """The three schema files in one psql run and one transaction (much faster than statement by statement)."""
    database = server.home / "scripts" / "database"
    files = [
        arg
        for name in ("schema", "initial_insert", "schema-post")
        for arg in ("-f", f"{database}/{name}.postgresql.sql")
    ]
    _psql(server.pg_port, "znuny", server.db_password, "-d", "znuny", "-1", *files, cwd=server.root)


def _setup_helpdesk(server: ZnunyServer) -> None:
    """Agent, groups, queues and web services, with Znuny's own console (as an admin would)."""
    z = server.console
    names = ("--first-name", "Agent", "--last-name", "One", "--email-address", "agent1@localhost.localdomain")
    z("Admin::User::Add", "--user-name", AGENT, *names, "--password", server.password)
    for group in ("users", "admin"):
        z("Admin::Group::UserLink", "--user-name", AGENT, "--group-name", group, "--permission", "rw")
    existing = set(server.psql("SELECT name FROM queue").split("\n"))
    for queue in QUEUES:
        if queue not in existing:
            z("Admin::Queue::Add", "--name", queue, "--group", "users")
    z("Admin::Group::Add", "--name", "restricted")
    z("Admin::Queue::Add", "--name", "Restricted", "--group", "restricted")
    imports = server.root / "webservices"
    imports.mkdir()
    imports.chmod(0o755)
    for name, source in server.webservices.items():
        copy = imports / f"{name}.yml"
        shutil.copyfile(source, copy)
        copy.chmod(0o644)
        z("Admin::WebService::Add", "--name", name, "--source-path", str(copy))
    z("Maint::Cache::Delete")


def _start_apache(server: ZnunyServer) -> None:
    conf = _httpd_conf(server.root, server.home, server.http_port)
    _run([APACHE, "-f", str(conf), "-t"], cwd=server.root, env={"PATH": "/usr/sbin:/usr/bin:/bin", "LANG": "C"})
    out = (server.root / "apache" / "stdout.log").open("wb")
    server._apache = subprocess.Popen(
        [APACHE, "-f", str(conf), "-DFOREGROUND"],
        cwd=server.root,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/sbin:/usr/bin:/bin", "LANG": "C"},
        start_new_session=True,  # its own process group: a stuck child can be killed with the parent
    )
    out.close()


def _wait_ready(server: ZnunyServer, deadline: float) -> None:
    """Log in through the first web service until it answers with a SessionID."""
    name = next(iter(server.webservices))
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server._apache is not None and server._apache.poll() is not None:
            output = _tail(server.root / "apache" / "stdout.log")
            raise ZnunyError(f"apache2 exited with {server._apache.returncode}: {output}")
        try:
            answer = httpx.post(
                f"{server.base_url(name)}/Session",
                json={"UserLogin": server.user, "Password": server.password},
                timeout=30,
            )
            if answer.status_code == 200 and "SessionID" in answer.json():
                return
            last = f"HTTP {answer.status_code}: {answer.text[:500]}"
        except (httpx.HTTPError, ValueError) as error:
            last = repr(error)
        time.sleep(0.2)
    raise ZnunyError(f"no SessionID from {server.base_url(name)}/Session within the deadline: {last}")
