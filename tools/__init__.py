"""Maintainer tooling, outside the ``course_lib`` package a learner installs: the builders of
``notebooks/`` (``make_notebooks``) and ``site/`` (``make_site``), and the one notebook executor
(``executor``) that the site build and ``benchmarks/lessons.py`` share.

Run from the repository root: ``python -m tools.make_notebooks``, ``python -m tools.make_site``
(``make notebooks``, ``make site``).
"""
