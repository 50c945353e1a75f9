"""The ``expunge demo``: a synthetic LAION-like dataset and synthetic lists, run through the whole flow.

Kept apart from the runtime package: nothing in expunge imports this subpackage but the CLI's ``demo``
command, tests and benchmarks. ``synth`` and ``synth_images`` generate the data (benign, labelled
SYNTHETIC); ``run`` drives the API over it.
"""

from expunge.demo.run import DEMO_LISTS, DemoResult, ImagePart, run_demo

__all__ = ["DEMO_LISTS", "DemoResult", "ImagePart", "run_demo"]
