"""`python -m homeostat` is the `homeostat` command."""

from homeostat.cli import main

raise SystemExit(main())
