"""The three stages (index → match → clean): planning which shards need work, and recording it.

Each stage module plans its per-shard tasks and takes their results; the tasks themselves run on an
executor (``expunge.stages.tasks`` lists them). Whether a shard's work is already done is decided
by one mechanism for all three stages: ``stages.done``.
"""
