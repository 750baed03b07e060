"""`python -m webhook.cli`: the same as the `stellar-peers` command."""

from webhook.cli.main import main

raise SystemExit(main())
