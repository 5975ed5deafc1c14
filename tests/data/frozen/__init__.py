"""Frozen data sets: what each release's stores hold, kept so every later schema change is tested against them.

Each ``<version>/`` folder is written once by :mod:`tests.data.frozen.make_frozen` with that release's code and
never edited afterwards; ``tests/integration/test_upgrade_from_frozen.py`` opens every one of them with today's
code.
"""
