"""The unit tier: kgmem's pure logic, with no Neo4j, Chroma or embedding model behind it.

`scripts/test tests/unit` runs it in seconds. A test here that asks for a real part fails,
which keeps the tier honest: such a test belongs in tests/ beside the integration tier.
"""

import pytest


def _no_real_parts():
    pytest.fail("unit tests run without Neo4j, Chroma or the model: move this test to tests/", pytrace=False)


@pytest.fixture(scope="session")
def managed_neo4j():
    _no_real_parts()


@pytest.fixture(scope="session")
def neo4j_server():
    _no_real_parts()


@pytest.fixture(scope="session")
def embedder():
    _no_real_parts()


@pytest.fixture(scope="session")
def chroma_server():
    _no_real_parts()
