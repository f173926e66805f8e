"""The load generator and isolation probe that live on the ``public`` network.

Data enters as command-line arguments (``python -m loadgen run|probe ...``, executed in the
``loadgen`` container by the test runner) and leaves as one JSON document on stdout. ``run``
sends a paced, bounded load (count and time both capped) and reports sent / ok / failed by reason /
latency percentiles; ``probe`` reports, per target, DNS answers and per-address TCP and
HTTP results.
Only the project's own containers are ever targets (names and addresses the runner passes in).
"""
