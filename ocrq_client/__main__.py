"""`python -m ocrq_client`: the `ocrq` command without the installed script."""

from ocrq_client.cli import main

raise SystemExit(main())
