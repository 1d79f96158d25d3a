"""What SQLite's group commit must keep: every caller gets its own answer, and a write that
returned is committed (another connection sees it), however many shared its transaction."""

import asyncio
import sqlite3
from pathlib import Path

import pytest

from lightning_core.storage import sqlite
from lightning_core.storage.base import Conflict
from lightning_core.storage.sqlite import SqliteStorage


def committed_ids(path: Path) -> set[str]:
    """The ids another connection sees: only what was committed."""
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute("SELECT id FROM documents")}


async def test_concurrent_writes_share_commits_and_keep_their_own_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    apply = sqlite._apply

    def counting(db: sqlite3.Connection, statements: list[tuple[str, sqlite.Params]]) -> object:
        batches.append(len(statements))
        return apply(db, statements)

    monkeypatch.setattr(sqlite, "_apply", counting)
    path = tmp_path / "group.db"
    async with SqliteStorage(path) as storage:
        await storage.create("things", "alice", "taken", {})
        ids = [f"t{n}" for n in range(50)]
        outcomes = await asyncio.gather(
            *(storage.create("things", "alice", doc_id, {"n": doc_id}) for doc_id in ids),
            storage.create("things", "alice", "taken", {}),
            return_exceptions=True,
        )
        *created, duplicate = outcomes
        assert isinstance(duplicate, Conflict)
        assert [getattr(document, "id", document) for document in created] == ids
        assert committed_ids(path) == {*ids, "taken"}
    assert max(batches) > 1
    assert sum(batches) == 52


async def test_close_commits_the_writes_already_queued(tmp_path: Path) -> None:
    path = tmp_path / "close.db"
    storage = SqliteStorage(path)
    await storage.connect()
    writes = [asyncio.create_task(storage.create("things", "alice", f"t{n}", {})) for n in range(5)]
    await asyncio.sleep(0)  # queued, not yet committed
    await storage.close()
    assert all(write.done() and write.exception() is None for write in writes)
    assert committed_ids(path) == {f"t{n}" for n in range(5)}
    with pytest.raises(RuntimeError, match="not connected"):
        await storage.create("things", "alice", "late", {})


INSERT = "INSERT INTO documents VALUES ('things', 'alice', ?, ?, 'e')"


def applied_once(
    path: Path, statements: list[tuple[str, sqlite.Params]], *pragmas: str
) -> list[int | Exception]:
    """One group commit of `statements` on a fresh database file, as the writer runs it."""
    db = sqlite._open(str(path))
    for pragma in pragmas:
        db.execute(pragma)
    try:
        return sqlite._apply(db, statements)
    finally:
        db.close()


def test_a_transaction_lost_before_its_commit_fails_every_statement_in_it(
    tmp_path: Path,
) -> None:
    """What SQLite does on a full disk or an I/O error, played by a ROLLBACK statement:
    nobody whose write was in the lost transaction may be told it was stored."""
    path = tmp_path / "lost.db"
    outcomes = applied_once(path, [(INSERT, ("lost", "{}")), ("ROLLBACK", ())])
    assert all(isinstance(outcome, sqlite3.OperationalError) for outcome in outcomes)
    assert committed_ids(path) == set()


def test_an_error_that_rolls_the_transaction_back_stores_nothing_after_it(
    tmp_path: Path,
) -> None:
    """A full database (SQLITE_FULL) rolls the transaction back by itself; the small
    write queued behind the big one must not then be stored on its own."""
    path = tmp_path / "full.db"
    writes: list[tuple[str, sqlite.Params]] = [
        (INSERT, ("big", "x" * 100_000)),
        (INSERT, ("small", "{}")),
    ]
    outcomes = applied_once(path, writes, "PRAGMA max_page_count = 8")
    assert all(isinstance(outcome, sqlite3.Error) for outcome in outcomes)
    assert committed_ids(path) == set()


async def test_a_writer_that_dies_fails_queued_writes_and_refuses_new_ones(
    tmp_path: Path,
) -> None:
    storage = SqliteStorage(tmp_path / "dead.db")
    await storage.connect()
    assert storage._writer is not None
    storage._writer.cancel()  # as a bug or a stray cancel would end it
    with pytest.raises(RuntimeError, match="closed before this write"):
        await storage.create("things", "alice", "t", {})
    with pytest.raises(RuntimeError, match="not connected"):
        await storage.create("things", "alice", "u", {})
    await storage.close()
