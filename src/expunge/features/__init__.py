"""Per-row values: URL canonicalisation, digests, image hashing, and the feature kinds they make."""

# The built-in column feature kinds register themselves on import: a stored name parses wherever
# expunge.features is imported.
from expunge.features import url as url
