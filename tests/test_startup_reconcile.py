"""The start-up reconcile: the outbox always, the index scans only when a cheap check finds Chroma out of
line with Neo4j (memory/sync.py). What it catches at start-up, and what only `kgmem reindex` catches."""

import logging
import shutil

import pytest

from api.services import open_services
from graph.model import EntityIn, EntityRef, ObservationIn
from graph.vocabulary import Kind
from memory.service import MemoryService
from memory.vectors import close_chroma

DATASET = EntityRef(name="Orders table", kind=Kind.DATASET)


@pytest.fixture
def memory(settings, gateway, embedder, space):
    """A service on a fresh store, reconciled once in full (as `kgmem reindex` does): the store is known
    complete, whatever other tests left in the shared Neo4j."""
    service = MemoryService.open(settings, gateway, embedder=embedder)
    service.space(space).graph.upsert_entities([EntityIn(kind=Kind.DATASET, name="Orders table")])
    service.reconcile()
    yield service
    close_chroma(service.chroma)


def observe(memory: MemoryService, space: str, *texts: str) -> list[str]:
    written = memory.space(space).graph.add_observations([ObservationIn(entity=DATASET, text=text) for text in texts])
    return [observation.id for observation in written]


def status_of(gateway, observation_id: str) -> str:
    return gateway.rows("MATCH (o:Observation {id: $id}) RETURN o.vector_status AS s", id=observation_id)[0]["s"]


def test_on_an_index_in_line_with_neo4j_it_skips_the_scans_and_says_what_it_checked(memory, space):
    observe(memory, space, "Orders arrive a day late on Mondays")

    report = memory.reconcile(quick=True)

    assert not report.scanned
    assert report.check.startswith("in line: ")
    assert (report.missing_repaired, report.orphans_removed) == (0, 0)
    assert f"in line: {memory.index.count()} vectors" in report.check
    assert "scans skipped" in str(report) and str(report).endswith(f"{report.seconds:.2f} s")


def test_pending_items_are_finished_at_start_up_without_a_scan(memory, space, graph_store):
    # The graph alone commits and stops there, as a process killed between Neo4j and Chroma leaves it.
    [left] = graph_store.space(space).add_observations([ObservationIn(entity=DATASET, text="The orders table has duplicate rows")])
    assert status_of(memory.gateway, left.id) == "pending"

    report = memory.reconcile(quick=True)

    assert report.embedded == 1
    assert not report.scanned  # once the outbox is in, the index is in line
    assert status_of(memory.gateway, left.id) == "indexed"
    assert memory.index.ids_in([f"obs:{left.id}"]) == {f"obs:{left.id}"}


def test_a_vector_deleted_behind_kgmems_back_is_repaired_at_start_up(memory, space, gateway):
    [kept] = observe(memory, space, "Orders arrive a day late on Mondays")
    memory.index.delete([f"obs:{kept}"])

    report = memory.reconcile(quick=True)

    assert report.scanned
    assert report.check.startswith("out of line: Chroma holds")
    assert report.missing_repaired == 1
    assert memory.index.ids_in([f"obs:{kept}"]) == {f"obs:{kept}"}
    assert status_of(gateway, kept) == "indexed"
    assert not memory.reconcile(quick=True).scanned  # and it is in line again


def test_an_orphan_vector_is_removed_at_start_up(memory, space, gateway):
    [dropped] = observe(memory, space, "The orders table has duplicate rows")
    gateway.write("MATCH (o:Observation {id: $id}) DETACH DELETE o", id=dropped)  # plain Cypher: Chroma keeps it

    report = memory.reconcile(quick=True)

    assert report.scanned and report.orphans_removed == 1
    assert memory.index.ids_in([f"obs:{dropped}"]) == set()


def test_a_lost_store_is_rebuilt_at_start_up(memory, settings, gateway, embedder, space):
    ids = observe(memory, space, "Orders arrive a day late on Mondays", "The orders table has duplicate rows")
    close_chroma(memory.chroma)
    shutil.rmtree(settings.chroma_dir)

    restarted = MemoryService.open(settings, gateway, embedder=embedder)
    try:
        report = restarted.reconcile(quick=True)
        assert report.scanned
        assert report.check.startswith("out of line: no complete reconcile of this store")
        assert report.missing_repaired >= 3  # the entity and both observations, with whatever else Neo4j holds
        assert restarted.index.ids_in([f"obs:{i}" for i in ids]) == {f"obs:{i}" for i in ids}
        assert restarted.index.rebuilding_since() is None
    finally:
        close_chroma(restarted.chroma)


def test_a_store_restored_from_a_copy_is_scanned_even_when_its_count_matches(memory, settings, gateway, embedder,
                                                                            space, tmp_path):
    """The count alone would pass: one vector gone and one added since the copy. The store's identity
    (its database's inode) tells the restored store from the one last reconciled, as long as the
    inode number is not one the file system reused (the module docstring)."""
    [old] = observe(memory, space, "Orders arrive a day late on Mondays")
    memory.reconcile()
    close_chroma(memory.chroma)
    backup = tmp_path / "chroma-backup"
    shutil.copytree(settings.chroma_dir, backup)
    live = MemoryService.open(settings, gateway, embedder=embedder)
    [new] = observe(live, space, "The orders table has duplicate rows")
    gateway.write("MATCH (o:Observation {id: $id}) DETACH DELETE o", id=old)
    live.index.delete([f"obs:{old}"])
    live.reconcile()
    count = live.index.count()
    close_chroma(live.chroma)
    # Moved aside, not deleted: a file system may give a new file the inode number a deleted one had.
    settings.chroma_dir.rename(tmp_path / "chroma-aside")
    shutil.copytree(backup, settings.chroma_dir)

    restored = MemoryService.open(settings, gateway, embedder=embedder)
    try:
        assert restored.index.count() == count  # the count cannot tell
        report = restored.reconcile(quick=True)
        assert report.scanned
        assert report.check.startswith("out of line: no complete reconcile of this store")
        assert (report.missing_repaired, report.orphans_removed) == (1, 1)
        assert restored.index.ids_in([f"obs:{new}", f"obs:{old}"]) == {f"obs:{new}"}
    finally:
        close_chroma(restored.chroma)


def test_as_many_missing_as_orphan_vectors_is_left_to_kgmem_reindex(memory, space, gateway):
    """The documented limit: the count is equal, so start-up does not scan; `kgmem reindex` always does."""
    kept, dropped = observe(memory, space, "Orders arrive a day late on Mondays", "The orders table has duplicate rows")
    memory.index.delete([f"obs:{kept}"])
    gateway.write("MATCH (o:Observation {id: $id}) DETACH DELETE o", id=dropped)

    assert not memory.reconcile(quick=True).scanned

    report = memory.reconcile()  # what `kgmem reindex` and the admin reindex run
    assert report.scanned and (report.missing_repaired, report.orphans_removed) == (1, 1)
    assert memory.index.ids_in([f"obs:{kept}", f"obs:{dropped}"]) == {f"obs:{kept}"}


def test_a_quick_reconcile_is_of_the_whole_index(memory, space):
    with pytest.raises(ValueError, match="quick"):
        memory.sync.reconcile(quick=True, space=space)


def test_the_start_up_log_line_says_what_the_reconcile_did_and_cost(memory, settings, embedder, caplog):
    close_chroma(memory.chroma)
    services = open_services(settings, embedder=embedder)
    try:
        with caplog.at_level(logging.INFO, logger="api.services"):
            services.start_background_work()
            assert services.wait_for_background_work(timeout_s=300)
        [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("start-up reconcile: ")]
        assert "scans skipped (in line: " in line
        assert line.endswith(" s")
    finally:
        services.close()


def test_after_a_full_rebuild_the_next_start_up_does_not_scan(memory, space):
    observe(memory, space, "Orders arrive a day late on Mondays")
    before = memory.index.collection.id

    rebuilt = memory.reconcile(full=True)
    assert not rebuilt.scanned and rebuilt.check.startswith("a full rebuild")
    assert memory.index.collection.id != before  # a new collection: a new identity, recorded by the rebuild

    assert memory.reconcile(quick=True).check.startswith("in line: ")
