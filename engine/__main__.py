"""Composition root for ``python -m engine``: parse, build, hand over."""
from engine.cli import main

raise SystemExit(main())
