"""`python -m smart_sorter` is the command line."""

from .cli import main

raise SystemExit(main())
