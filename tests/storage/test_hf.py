"""``hf://`` (the Hugging Face Hub) read-only: it needs the network, so it runs only when asked.

``EXPUNGE_NETWORK_TESTS=1 python -m pytest tests/storage/test_hf.py`` lists a small public dataset's
parquet shards and reads one shard's URL column through the same storage layer the pipeline uses.
Everywhere else it is skipped, saying why; ``memory://`` and the local S3 server stand in for remote
protocols in the other tests.
"""

from __future__ import annotations

import os

import pytest

NETWORK = os.environ.get("EXPUNGE_NETWORK_TESTS") == "1"
DATASET = "hf://datasets/nlphuji/flickr30k"  # public; only listed and one column read, never downloaded whole


@pytest.mark.skipif(not NETWORK, reason="hf:// needs the network (set EXPUNGE_NETWORK_TESTS=1 to run it)")
def test_a_hub_dataset_is_listed_and_one_column_read() -> None:
    pytest.importorskip("huggingface_hub", reason="hf:// needs huggingface_hub: pip install 'expunge[hub]'")
    import pyarrow.parquet as pq

    from expunge import storage

    shards = [loc for loc in storage.walk(DATASET) if loc.path.endswith(".parquet")]
    assert shards
    pf = pq.ParquetFile(storage.open_input(shards[0]))
    assert pf.metadata.num_rows > 0
