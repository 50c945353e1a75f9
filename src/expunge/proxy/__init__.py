"""Matching by proxy: check a dataset against lists its holder never sees.

The holder exports a query package of its dataset's distinct digests (:mod:`expunge.proxy.query`), a
hotline matches it against its private lists and answers with the query's own digests that matched
(:mod:`expunge.proxy.answer`), and the holder imports the answer as banks (:mod:`expunge.proxy.importer`)
that the next ``clean`` removes rows by. :mod:`expunge.proxy.package` is the on-disk layout of both
packages, their manifests, ids and signatures.
"""
