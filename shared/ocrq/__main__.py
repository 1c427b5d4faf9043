"""`python -m shared.ocrq`: the `ocrq` command without the installed script."""

from shared.ocrq import main

raise SystemExit(main())
