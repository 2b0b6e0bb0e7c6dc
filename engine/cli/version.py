"""The distribution's name and version: one source, read by ``setup.py`` and printed by ``--version``.

``drover`` on PyPI is another project, so the distribution is ``drover-engine``; the import names
(``engine``, ``navigation``, ``coordination``, ``bench``) and the console script (``drover``) are unchanged.
"""
DISTRIBUTION = "drover-engine"
VERSION = "0.1.0"
CONSOLE_SCRIPT = "drover"

__all__ = ["DISTRIBUTION", "VERSION", "CONSOLE_SCRIPT"]
