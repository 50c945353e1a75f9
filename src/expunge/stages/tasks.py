"""Every per-shard task function, importable in one go (the worker pool preloads this module)."""

from expunge.index.build import index_shard
from expunge.match.stage import match_shard
from expunge.release.cover import shard_candidates
from expunge.stages.clean_task import clean_shard, tally_shard
from expunge.stages.soft import soft_shard

__all__ = ["clean_shard", "index_shard", "match_shard", "shard_candidates", "soft_shard", "tally_shard"]
