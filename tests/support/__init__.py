"""Helpers the tests share, one module per concern: paths, servers, redis, model repositories, named
image sets, wire messages, hostile inputs, and each area's harness and reference implementations.

`tests/` is on the import path (pyproject's pytest `pythonpath`), so tests import these as
`from support.servers import RunningServer`; fixtures stay in `tests/conftest.py`. The package is not
called `tests`: horama installs a top-level `tests` package into site-packages."""
