"""Ids: prefixed ULIDs, made in this process in strictly increasing order."""

from __future__ import annotations

import random
import threading

from ulid import ULID

from krabs.contract.ids import encode, looks_like, new_id


def test_encoding_matches_the_ulid_reference():
    rng = random.Random(7)
    values = [0, 1, (1 << 128) - 1, 1 << 80, (1 << 48) - 1 << 80]
    values += [rng.getrandbits(128) for _ in range(5000)]
    for value in values:
        assert encode(value) == str(ULID.from_int(value))


def test_ids_sort_in_creation_order_across_threads_and_carry_the_time():
    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_id("contact") for _ in range(5000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in made:  # each thread saw its ids increase
        assert out == sorted(out)
    every = [i for out in made for i in out]
    assert len(set(every)) == len(every)
    assert all(looks_like("contact", i) for i in every)
    before = ULID()
    mine = new_id("action")
    assert mine.startswith("act_")
    assert abs(ULID.from_str(mine[4:]).milliseconds - before.milliseconds) < 5_000
