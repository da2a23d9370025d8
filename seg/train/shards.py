"""Which training cases each DDP rank trains on: its own share of the fold's training cases, disjoint from every
other rank's (DistributedSampler's split: global rank r of W takes cases r, r + W, r + 2W, ... of the sorted ids).
Each rank then draws its patches from its share with its own random stream."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seg.data.cache import CacheError
from seg.files import write_json

SHARDS_FILE = "train_cases.json"  # beside the run state: which cases each rank trained on


def shard(case_ids: Sequence[str], rank: int, world_size: int) -> list[str]:
    """The cases global rank `rank` of `world_size` trains on; one process keeps every case in the fold's order."""
    if world_size == 1:
        return list(case_ids)
    return sorted(case_ids)[rank::world_size]


def gather_shards(own: list[str], world_size: int) -> list[list[str]]:
    """Every rank's training cases, by global rank, as each rank holds them (a collective: every rank calls it)."""
    if world_size == 1:
        return [own]
    import torch.distributed as dist

    shards: list = [None] * world_size
    dist.all_gather_object(shards, own)
    return shards


def check_shards(shards: list[list[str]], case_ids: Sequence[str]) -> None:
    """Every training case on exactly one rank; otherwise the machines read different caches or splits."""
    held = [case for part in shards for case in part]
    if len(held) != len(set(held)) or set(held) != set(case_ids):
        raise CacheError(
            f"the ranks hold {len(held)} training cases ({len(set(held))} distinct) where the fold has "
            f"{len(case_ids)}: every machine must read the same preprocessed cache. Share data.cache_dir, or "
            f"preprocess on each machine with the same data and data.* settings."
        )


def write_shards(shards: list[list[str]], out_dir: Path) -> list[int]:
    """`<out_dir>/train_cases.json`: the training cases of each rank, by global rank; returns how many each."""
    write_json(Path(out_dir) / SHARDS_FILE, {"world_size": len(shards), "case_ids_by_rank": shards})
    return [len(part) for part in shards]
