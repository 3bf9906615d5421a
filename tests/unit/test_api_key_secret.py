"""The server-side secret API keys are hashed under, the stored hash's form, and who a client is."""

from __future__ import annotations

import hashlib
import hmac
import stat
import threading

import pytest
from pydantic import ValidationError

from api.auth import keyed_hash, secret_id, server_secret
from api.limits import RateLimiter, client_address
from graph.errors import ConfigurationError
from graph.settings import Settings

SETTING = "k" * 40


def test_the_secret_is_generated_once_in_the_data_directory_with_mode_0600(tmp_path):
    settings = Settings(home=tmp_path / "home")
    first = server_secret(settings)
    path = tmp_path / "home" / "api-key-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert server_secret(settings) == first  # read back, not made again
    assert server_secret(Settings(home=tmp_path / "home")) == first  # another process on the same home
    assert [p.name for p in path.parent.iterdir()] == ["api-key-secret"]  # no draft left behind


def test_the_setting_wins_over_the_file_and_a_chosen_file_is_used(tmp_path):
    assert server_secret(Settings(home=tmp_path, api_key_secret=SETTING)) == SETTING.encode()
    assert not (tmp_path / "api-key-secret").exists()
    shared = tmp_path / "shared" / "kgmem-key-secret"
    made = server_secret(Settings(home=tmp_path / "replica-1", api_key_secret_file=shared))
    assert server_secret(Settings(home=tmp_path / "replica-2", api_key_secret_file=shared)) == made
    assert shared.read_text().strip().encode() == made


def test_replicas_starting_at_once_on_shared_storage_end_up_with_one_secret(tmp_path):
    shared = tmp_path / "api-key-secret"
    barrier = threading.Barrier(8)
    found: list[bytes] = []

    def start() -> None:
        barrier.wait()
        found.append(server_secret(Settings(home=tmp_path, api_key_secret_file=shared)))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api-key-secret"]


def test_a_damaged_secret_file_is_a_configuration_error_naming_it(tmp_path):
    (tmp_path / "api-key-secret").write_text("short\n")
    with pytest.raises(ConfigurationError, match="api-key-secret holds fewer than 32 characters"):
        server_secret(Settings(home=tmp_path))


def test_a_short_secret_setting_is_refused_naming_the_setting():
    with pytest.raises(ValidationError, match="api_key_secret") as refused:
        Settings(api_key_secret="too short")
    assert "at least 32 characters" in str(refused.value)


def test_the_secret_is_masked_in_the_public_settings():
    assert Settings(api_key_secret=SETTING).public_dict()["api_key_secret"] == "********"


def test_the_stored_hash_is_hmac_sha256_of_the_secret_under_the_server_secret():
    server = b"s" * 32
    stored = keyed_hash(server, "the-token-secret")
    scheme, fingerprint, digest = stored.split(":")
    assert scheme == "hmac-sha256"
    assert fingerprint == secret_id(server) != secret_id(b"t" * 32)
    assert digest == hmac.new(server, b"the-token-secret", hashlib.sha256).hexdigest()
    assert keyed_hash(b"t" * 32, "the-token-secret") != stored


@pytest.mark.parametrize(("peer", "client"), [
    (("203.0.113.5", 4000), "203.0.113.5"),
    (("2001:db8:1:2:3:4:5:6", 4000), "2001:db8:1:2::/64"),  # one host's /64 counts as one client
    (("2001:db8:1:2:ffff::1", 4000), "2001:db8:1:2::/64"),
    (("::ffff:198.51.100.1", 4000), "198.51.100.1"),
    (("testclient", 50000), "testclient"),
    (None, "unknown"),
])
def test_client_address(peer, client):
    assert client_address({"type": "http", "client": peer}) == client


def test_a_token_given_back_is_there_again():
    clock = [0.0]
    limiter = RateLimiter(2, clock=lambda: clock[0])
    assert limiter.take("a") is None and limiter.take("a") is None
    assert limiter.take("a") is not None
    limiter.give_back("a")
    assert limiter.take("a") is None
    limiter.give_back("b")  # nothing taken: nothing to give back
    limiter.give_back("a")
    limiter.give_back("a")
    limiter.give_back("a")
    assert [limiter.take("a") for _ in range(3)] == [None, None, pytest.approx(30.0)]  # never over the burst
