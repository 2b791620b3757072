"""Sharding: a policy's shard depends on its namespace and name only, and spreads evenly."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from homeostat.operator.sharding import Shard, shard_of

NAMES = [(f"team-{i % 37}", f"policy-{i}") for i in range(4000)]


def test_the_shard_is_the_sha256_of_namespace_slash_name_modulo_the_count() -> None:
    for namespace, name in NAMES[:50]:
        digest = int.from_bytes(hashlib.sha256(f"{namespace}/{name}".encode()).digest()[:8], "big")
        assert shard_of(namespace=namespace, name=name, count=7) == digest % 7


def test_every_policy_has_exactly_one_owner_among_the_shards() -> None:
    shards = [Shard(index=i, count=3) for i in range(3)]
    for namespace, name in NAMES:
        owners = [s.index for s in shards if s.owns(namespace=namespace, name=name)]
        assert owners == [shard_of(namespace=namespace, name=name, count=3)]


def test_many_policies_spread_evenly() -> None:
    counts = Counter(shard_of(namespace=ns, name=n, count=4) for ns, n in NAMES)
    assert sorted(counts) == [0, 1, 2, 3]
    mean = len(NAMES) / 4
    assert all(abs(count - mean) < 0.1 * mean for count in counts.values()), counts  # within 10 % of a quarter


def test_the_same_name_in_another_namespace_is_another_policy() -> None:
    placed = {shard_of(namespace=f"ns-{i}", name="checkout", count=4) for i in range(40)}
    assert len(placed) > 1


def test_one_shard_owns_everything_and_keeps_the_lease_name() -> None:
    alone = Shard()
    assert not alone.sharded and alone.owns(namespace="shop", name="checkout")
    assert alone.lease_name("homeostat") == "homeostat"
    assert Shard(index=2, count=3).lease_name("homeostat") == "homeostat-shard-2"


@pytest.mark.parametrize(("index", "count"), [(0, 0), (-1, 2), (2, 2), (5, 3)])
def test_an_index_outside_the_count_is_refused(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="shard"):
        Shard(index=index, count=count)
