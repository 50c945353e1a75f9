"""An example expunge plug-in: a signal type and a dataset format added without touching expunge.

- :mod:`.signal`: ``url_md5_0x``, URL MD5s written as SQL Server's ``HASHBYTES`` prints them
  (``0x`` and upper-case hex), matched against the index's existing URL MD5 feature.
- :mod:`.format`: ``checksummed_parquet``, parquet shards that each ship a ``NAME.parquet.sha256``
  file (``sha256sum`` format); shards whose bytes do not match are refused, and a cleaned shard's
  checksum file is written for the bytes the release holds.
"""
