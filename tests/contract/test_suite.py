"""The store contract suite, as a project using sessionflow collects it: one line (the stores come from
``conftest.py`` here)."""

from sessionflow.testing.contract import *  # noqa: F403
