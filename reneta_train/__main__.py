"""``python -m reneta_train [train|bench] ...``: see :mod:`reneta_train.cli`."""

from .cli import main

raise SystemExit(main())
