"""The managed local Neo4j: a real 5.26 server, its configuration and its lifecycle."""

import socket
import stat
import time

import httpx
import pytest

from graph import Settings
from graph.errors import PortInUse
from graph.neo4j_server import LocalNeo4j
from graph.neo4j_server.server import free_port, pid_alive, port_is_free

def test_the_suite_runs_on_neo4j_5_26(gateway):
    info = gateway.server_info()
    assert info["version"].startswith("5.26.")
    assert info["name"] == "Neo4j Kernel"


def test_status_reports_version_ports_pid_and_data(managed_neo4j):
    status = managed_neo4j.status()
    assert status.running
    assert status.version.startswith("5.26.") and status.edition == "community"
    assert pid_alive(status.pid)
    assert status.bolt_uri == managed_neo4j.running().bolt_uri
    assert status.data_path.is_dir()


def test_password_is_generated_once_and_private(managed_neo4j):
    server = managed_neo4j
    mode = stat.S_IMODE(server.password_file.stat().st_mode)
    assert mode == 0o600
    assert server.password() == server.password_file.read_text().strip()
    assert len(server.password()) >= 24


def test_a_password_that_begins_with_a_dash_is_set_as_a_password(managed_neo4j, tmp_path):
    # token_urlsafe begins with "-" one time in 64; neo4j-admin must not read it as an option.
    server = LocalNeo4j(Settings(home=tmp_path), show_progress=False)
    server.root.mkdir(parents=True)
    server.password_file.write_text("-f9t4k3wvorPeT5wfEq5CK3FiPlqamfz\n")
    server.install()
    assert (server.data_dir / "dbms" / "auth.ini").exists()


def test_configuration_listens_locally_with_auth_and_browser(managed_neo4j):
    conf = (managed_neo4j.conf_dir / "neo4j.conf").read_text()
    assert "dbms.security.auth_enabled=true" in conf
    assert "server.http.enabled=true" in conf
    assert "server.bolt.listen_address=127.0.0.1:" in conf


def test_http_port_serves_neo4j_browser(managed_neo4j):
    state = managed_neo4j.running()
    discovery = httpx.get(f"http://127.0.0.1:{state.http_port}/", timeout=10).json()
    assert discovery["neo4j_version"].startswith("5.26.")
    assert httpx.get(state.browser_url, timeout=10).status_code == 200


def test_a_taken_bolt_port_is_reported_clearly(managed_neo4j, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = LocalNeo4j(Settings(home=tmp_path, neo4j_bolt_port=port, neo4j_http_port=free_port()), show_progress=False)
        with pytest.raises(PortInUse) as error:
            server.start()
    message = str(error.value)
    assert f"Bolt port {port}" in message and "KGMEM_NEO4J_BOLT_PORT" in message and "--pick-free-port" in message
    assert server.running() is None


def test_start_waits_for_bolt_and_stop_waits_for_exit(managed_neo4j, tmp_path):
    taken = managed_neo4j.running().bolt_port
    server = LocalNeo4j(Settings(home=tmp_path, neo4j_pick_free_port=True, neo4j_bolt_port=taken), show_progress=False)
    state, started = server.start()
    try:
        assert started
        assert state.bolt_port != taken  # the taken port was swapped for a free one
        version, edition = server.server_version(state)  # Bolt answers as soon as start returns
        assert version.startswith("5.26.") and edition == "community"
        assert server.start() == (state, False)  # a second start finds it running
    finally:
        assert server.stop(timeout=60)
    assert not pid_alive(state.pid)
    assert server.running() is None
    assert not server.state_file.exists()
    assert server.stop() is False


def test_a_port_left_in_time_wait_by_a_stopped_server_is_free_and_a_listening_one_is_not():
    # A stopped Neo4j's closed connections leave its Bolt port in TIME_WAIT for a minute; a
    # restart right away must not be told that the port is taken.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert not port_is_free(port)
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first, so the TIME_WAIT is on its port
    time.sleep(0.1)
    client.close()
    listener.close()
    assert port_is_free(port)
