"""kgmem's managed local Neo4j: configure, start, supervise and stop one server.

Layout under `$KGMEM_HOME/neo4j/`:

    conf/neo4j.conf   rewritten on every start from the settings
    data/ logs/ run/ plugins/ import/
    password          generated once, mode 0600

`$KGMEM_HOME` and `neo4j/` are mode 0700 (graph/home.py): the store holds every tenant.
    run/kgmem-neo4j.json   pid and ports of the running server

The JVM is launched directly (not through `bin/neo4j`) so that every way of
getting the distribution, including the jar-assembled one, starts the same way.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


from graph.errors import ConfigurationError, Neo4jStartError, Neo4jUnavailable, PortInUse
from graph.gateway import Gateway, open_driver
from graph.home import ensure_private, ensure_private_data
from graph.neo4j_server.distribution import Distribution, DistributionResolver
from graph.neo4j_server.java import JavaRuntime, find_java
from graph.settings import Settings

log = logging.getLogger(__name__)

ENTRY_POINT = "org.neo4j.server.CommunityEntryPoint"
ADMIN_TOOL = "org.neo4j.cli.AdminTool"
LISTEN_HOST = "127.0.0.1"

# The flags Neo4j's own launcher passes; the add-opens keep Netty and the page cache off slow paths.
JVM_FLAGS = [
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dlog4j2.disable.jmx=true",
    "-Dfile.encoding=UTF-8",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
]


@dataclass(frozen=True)
class RunState:
    pid: int
    bolt_port: int
    http_port: int
    version: str
    started_at: float

    @property
    def bolt_uri(self) -> str:
        return f"bolt://{LISTEN_HOST}:{self.bolt_port}"

    @property
    def browser_url(self) -> str:
        return f"http://{LISTEN_HOST}:{self.http_port}/browser/"


@dataclass(frozen=True)
class Neo4jStatus:
    running: bool
    version: str | None
    edition: str | None
    pid: int | None
    bolt_uri: str | None
    browser_url: str | None
    data_path: Path
    distribution: str | None


def port_is_free(port: int, host: str = LISTEN_HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As Neo4j binds: a port that a stopped server's closed connections hold in TIME_WAIT is
        # free to it; a listening socket still makes the bind fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LISTEN_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalNeo4j:
    """One managed Neo4j server, bound to one data directory."""

    def __init__(self, settings: Settings, *, show_progress: bool = True) -> None:
        self.settings = settings
        self.root = settings.neo4j_dir
        self.resolver = DistributionResolver(settings, show_progress=show_progress)

    # -- paths ------------------------------------------------------------------------
    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "kgmem-neo4j.json"

    @property
    def console_log(self) -> Path:
        return self.logs_dir / "console.log"

    # -- install ------------------------------------------------------------------------
    def install(self) -> Distribution:
        """Get the distribution and a Java, and set the password once. Safe to repeat."""
        distribution = self.resolver.resolve()
        java = find_java()
        self._make_root()
        for directory in (self.conf_dir, self.data_dir, self.logs_dir, self.run_dir,
                          self.root / "plugins", self.root / "import"):
            directory.mkdir(parents=True, exist_ok=True)
        password = self.password()
        self._write_conf(self.settings.neo4j_bolt_port, self.settings.neo4j_http_port)
        if not (self.data_dir / "dbms" / "auth.ini").exists() and not self._has_system_database():
            self._set_initial_password(distribution, java, password)
        return distribution

    def password(self) -> str:
        """The server's password: generated on first use, then read back (file mode 0600)."""
        if self.password_file.exists():
            return self.password_file.read_text().strip()
        self._make_root()
        value = secrets.token_urlsafe(24)
        descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(value + "\n")
        return value

    def _make_root(self) -> None:
        """The data directory and Neo4j's, private to this user (tightened, with a warning, if they were not)."""
        ensure_private_data(self.settings)
        ensure_private(self.root)

    def _has_system_database(self) -> bool:
        return (self.data_dir / "databases" / "system").exists()

    def _set_initial_password(self, distribution: Distribution, java: JavaRuntime, password: str) -> None:
        # "--" ends the options: a generated password may begin with "-".
        result = subprocess.run(
            self._admin_command(distribution, java, "dbms", "set-initial-password", "--", password),
            capture_output=True, text=True, env=self._admin_env(distribution), timeout=300,
        )
        if result.returncode != 0:
            raise Neo4jStartError(f"neo4j-admin set-initial-password failed: {_last_line(result.stderr or result.stdout)}")

    def _admin_command(self, distribution: Distribution, java: JavaRuntime, *args: str) -> list[str]:
        """neo4j-admin as the server's own jars provide it (the jar-assembled distribution has no bin/)."""
        return [str(java.executable), "-cp", distribution.classpath, ADMIN_TOOL, *args]

    def _admin_env(self, distribution: Distribution) -> dict[str, str]:
        return {**os.environ, "NEO4J_HOME": str(distribution.home), "NEO4J_CONF": str(self.conf_dir)}

    def admin(self, *args: str, on_line: Callable[[str], None] | None = None) -> None:
        """Run `neo4j-admin ARGS` on this data directory (the server stopped, for dump and load), passing
        each line it prints to `on_line`; Neo4jStartError with its last line when it fails."""
        distribution = self.install()
        process = subprocess.Popen(self._admin_command(distribution, find_java(), *args), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env=self._admin_env(distribution), cwd=self.root)
        last: list[str] = []
        for line in process.stdout or ():
            last = [*last[-20:], line.rstrip()]
            if on_line:
                on_line(line.rstrip())
        if process.wait() != 0:
            raise Neo4jStartError(f"neo4j-admin {' '.join(args[:2])} failed: {_last_line(chr(10).join(last))}")

    def _write_conf(self, bolt_port: int, http_port: int) -> None:
        s = self.settings
        lines = {
            "server.directories.data": self.data_dir,
            "server.directories.logs": self.logs_dir,
            "server.directories.run": self.run_dir,
            "server.directories.plugins": self.root / "plugins",
            "server.directories.import": self.root / "import",
            "server.default_listen_address": LISTEN_HOST,
            "server.bolt.enabled": "true",
            "server.bolt.listen_address": f"{LISTEN_HOST}:{bolt_port}",
            "server.bolt.advertised_address": f"{LISTEN_HOST}:{bolt_port}",
            "server.http.enabled": "true",
            "server.http.listen_address": f"{LISTEN_HOST}:{http_port}",
            "server.http.advertised_address": f"{LISTEN_HOST}:{http_port}",
            "server.https.enabled": "false",
            "server.memory.heap.initial_size": s.neo4j_heap,
            "server.memory.heap.max_size": s.neo4j_heap,
            "server.memory.pagecache.size": s.neo4j_pagecache,
            # One runaway query (an analyst's `reduce` doubling a string) fails alone instead of
            # running the heap out, which kills the server's own threads.
            "db.memory.transaction.max": s.neo4j_transaction_memory,
            "dbms.security.auth_enabled": "true",
            "dbms.usage_report.enabled": "false",
            "db.tx_log.rotation.retention_policy": "2 files",
        }
        body = "# Written by kgmem on every start; edit kgmem's settings instead.\n"
        body += "".join(f"{key}={value}\n" for key, value in lines.items())
        (self.conf_dir / "neo4j.conf").write_text(body)

    # -- lifecycle ------------------------------------------------------------------------
    def running(self) -> RunState | None:
        """The state of the server this data directory runs, if it is alive."""
        if not self.state_file.exists():
            return None
        try:
            state = RunState(**json.loads(self.state_file.read_text()))
        except (ValueError, TypeError):
            return None
        if not pid_alive(state.pid) or not self._is_our_process(state.pid):
            return None
        return state

    def _is_our_process(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return True  # no /proc (macOS): trust the pid file
        return ENTRY_POINT in cmdline and str(self.conf_dir) in cmdline

    def start(self, timeout: float | None = None) -> tuple[RunState, bool]:
        """Start the server unless it runs; return its state and whether this call started it."""
        current = self.running()
        if current:
            return current, False
        distribution = self.install()
        java = find_java()
        bolt_port = self._usable_port(self.settings.neo4j_bolt_port, "Bolt", "KGMEM_NEO4J_BOLT_PORT")
        http_port = self._usable_port(self.settings.neo4j_http_port, "HTTP", "KGMEM_NEO4J_HTTP_PORT", avoid={bolt_port})
        self._write_conf(bolt_port, http_port)

        command = [
            str(java.executable), f"-Xms{self.settings.neo4j_heap}", f"-Xmx{self.settings.neo4j_heap}",
            *JVM_FLAGS, "-cp", distribution.classpath, ENTRY_POINT,
            f"--home-dir={distribution.home}", f"--config-dir={self.conf_dir}",
        ]
        console = self.console_log.open("ab")
        # A session of its own: Ctrl-C on `kgmem serve` must not reach Neo4j before kgmem decides.
        process = subprocess.Popen(
            command, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.root,
        )
        console.close()
        state = RunState(process.pid, bolt_port, http_port, distribution.version, time.time())
        self.state_file.write_text(json.dumps(asdict(state)))
        try:
            self._wait_for_bolt(process, state, timeout or self.settings.neo4j_start_timeout)
        except BaseException:
            self._terminate(process.pid, grace=20)
            self.state_file.unlink(missing_ok=True)
            raise
        log.info("neo4j %s started, pid %s, %s", state.version, state.pid, state.bolt_uri)
        return state, True

    def _usable_port(self, port: int, name: str, setting: str, avoid: set[int] = frozenset()) -> int:
        if port not in avoid and port_is_free(port):
            return port
        if self.settings.neo4j_pick_free_port:
            chosen = free_port()
            while chosen in avoid:
                chosen = free_port()
            log.info("neo4j: %s port %s is taken, using %s", name, port, chosen)
            return chosen
        raise PortInUse(
            f"{name} port {port} on {LISTEN_HOST} is already in use; stop whatever holds it, "
            f"set {setting} to another port, or let kgmem pick one (--pick-free-port or KGMEM_NEO4J_PICK_FREE_PORT=true)"
        )

    def _wait_for_bolt(self, process: subprocess.Popen, state: RunState, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        password = self.password()
        rejected: ConfigurationError | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise Neo4jStartError(
                    f"Neo4j exited with code {process.returncode} while starting: {self._failure_reason()} "
                    f"(logs: {self.logs_dir})"
                )
            try:
                # Bolt opens before the databases are online, so wait for a real query to answer. An
                # auto-commit query fails at once; a managed one would retry for 30 s, logging warnings.
                gateway = Gateway(lambda: open_driver(state.bolt_uri, self.settings.neo4j_username, password),
                                  self.settings.neo4j_database)
                try:
                    gateway.run_implicit("RETURN 1")
                finally:
                    gateway.close()
                return
            except ConfigurationError as exc:
                # Keep waiting: if another server took the port we picked, ours exits (reported above).
                rejected = exc
                time.sleep(0.5)
            except Exception:  # noqa: BLE001 - not up yet, whatever the driver says
                time.sleep(0.5)
        if rejected is not None:
            raise Neo4jStartError(
                f"Neo4j on {state.bolt_uri} rejected kgmem's password in {self.password_file}: {rejected}. "
                f"If you deleted that file, also delete {self.data_dir} to start afresh"
            )
        raise Neo4jStartError(f"Neo4j did not answer on {state.bolt_uri} within {timeout:.0f}s (logs: {self.logs_dir})")

    def _failure_reason(self) -> str:
        for log_file in (self.logs_dir / "neo4j.log", self.console_log):
            if not log_file.exists():
                continue
            lines = log_file.read_text(errors="replace").splitlines()[-200:]
            errors = [line for line in lines if "ERROR" in line or "Exception" in line]
            if errors:
                return errors[-1].strip()[:400]
        return "no error in the logs"

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM the server and wait for it to exit; False if none was running."""
        state = self.running()
        if not state:
            self.state_file.unlink(missing_ok=True)
            return False
        self._terminate(state.pid, grace=timeout)
        self.state_file.unlink(missing_ok=True)
        return True

    def _terminate(self, pid: int, grace: float) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if _exited(pid):
                return
            time.sleep(0.2)
        log.warning("neo4j pid %s ignored SIGTERM for %.0fs; killing it", pid, grace)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while not _exited(pid):
            time.sleep(0.1)

    def status(self) -> Neo4jStatus:
        state = self.running()
        installed = self.resolver.installed()
        if not state:
            return Neo4jStatus(False, installed.version if installed else None, None, None, None, None,
                               self.data_dir, installed.source if installed else None)
        version, edition = self.server_version(state)
        return Neo4jStatus(True, version, edition, state.pid, state.bolt_uri, state.browser_url,
                           self.data_dir, installed.source if installed else None)

    def server_version(self, state: RunState) -> tuple[str, str]:
        """Version and edition as the running server reports them."""
        password = self.password()
        gateway = Gateway(lambda: open_driver(state.bolt_uri, self.settings.neo4j_username, password))
        try:
            info = gateway.server_info()
        except Exception as exc:  # noqa: BLE001 - any failure means it does not answer
            raise Neo4jUnavailable(f"the local Neo4j (pid {state.pid}) does not answer on {state.bolt_uri}: {exc}") from exc
        finally:
            gateway.close()
        return info["version"], info["edition"]

    def connection(self) -> tuple[str, tuple[str, str]]:
        """Bolt URI and auth of the running server, or Neo4jUnavailable telling how to start it."""
        state = self.running()
        if not state:
            raise Neo4jUnavailable("kgmem's local Neo4j is not running; start it with `kgmem neo4j start`")
        return state.bolt_uri, (self.settings.neo4j_username, self.password())


def _exited(pid: int) -> bool:
    """Whether the process is gone; reaps it when it is our child so it leaves no zombie."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        return reaped == pid
    except ChildProcessError:
        return not pid_alive(pid) or _is_dead_zombie(pid)


def _is_dead_zombie(pid: int) -> bool:
    """Exited but not yet reaped by its parent. A JVM's main thread shows 'Z' while the
    others still run, so every thread must be gone, not just the leader."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state == "Z" and len(os.listdir(f"/proc/{pid}/task")) <= 1
    except (OSError, IndexError):
        return False


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
