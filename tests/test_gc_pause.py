"""``fewer_collections``: the garbage collector's first threshold is raised while bulk jobs run and
put back when the last one ends (nested, across threads, after a failure); an import runs inside it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bulk_helpers import as_caller
from conftest import ok
from krabs.accounts import create_account
from krabs.engine import Engine
from krabs.gc_pause import GEN0, fewer_collections
from krabs.ops import contact_import


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_raised_inside_and_put_back_after_even_on_failure() -> None:
    with fewer_collections():
        assert gc.get_threshold() == (GEN0, 10, 10)
        with fewer_collections():
            assert gc.get_threshold() == (GEN0, 10, 10)
        assert gc.get_threshold() == (GEN0, 10, 10)  # the outer job still runs
    assert gc.get_threshold() == (700, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the import failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_jobs_on_two_threads_restore_once_the_last_ends() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def first() -> None:
        with fewer_collections():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with fewer_collections():
            second_in.set()
            first_out.wait(10)
            seen.append(gc.get_threshold())  # the first job ended; this one still runs

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == [(GEN0, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)


def test_collection_switched_off_stays_off() -> None:
    gc.set_threshold(0, 10, 10)
    with fewer_collections():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)


def test_an_import_runs_with_fewer_collections(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    during: list[tuple[int, int, int]] = []
    real = contact_import._import

    def spy(*args: Any, **kwargs: Any) -> Any:
        during.append(gc.get_threshold())
        return real(*args, **kwargs)

    monkeypatch.setattr(contact_import, "_import", spy)
    call = as_caller(engine, create_account(engine.store, "gc"))
    done = ok(call("contact.import_csv", {"csv": "name,email\nAda,ada@x.dev\n"}))
    assert done["created"] == 1
    assert during == [(GEN0, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)
