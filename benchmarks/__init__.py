"""sessionflow's benchmark suite: each figure measured next to its references, in the same run.

``python -m benchmarks`` runs every benchmark and writes ``docs/benchmarks.md``; see
:mod:`benchmarks.runner` for the options and :mod:`benchmarks.framework` for how to add one.
"""
