"""`python -m infra.local`: run the local stack (see `infra.local.server`)."""

from __future__ import annotations

import sys

from infra.local.server import main

if __name__ == "__main__":
    sys.exit(main())
