"""Composition root for ``python -m engine``: parse, build, hand over."""
from engine.cli.main import main

raise SystemExit(main())
