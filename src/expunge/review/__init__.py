"""The review loop: candidates that soft signals raised go to an authorised organisation (a hotline),
never to a maintainer's eyes, and come back as verdicts.

``queue`` holds each candidate's state in the store, ``export`` writes the package a hotline receives,
``verdicts`` reads what it sends back. Nothing here reads images or captions.
"""

from __future__ import annotations

from expunge.review.export import ExportResult, export
from expunge.review.queue import VERDICTS, Candidates, ReviewQueue
from expunge.review.verdicts import ImportResult, import_verdicts, read_verdicts

__all__ = [
    "VERDICTS",
    "Candidates",
    "ExportResult",
    "ImportResult",
    "ReviewQueue",
    "export",
    "import_verdicts",
    "read_verdicts",
]
