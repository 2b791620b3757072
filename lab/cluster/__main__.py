"""``python -m homeostat.lab.cluster build|up|versions``."""

from homeostat.lab.cluster.command import main

if __name__ == "__main__":
    raise SystemExit(main())
