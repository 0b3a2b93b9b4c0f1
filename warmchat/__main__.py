"""Entry point for `python -m warmchat`."""

import sys

from warmchat.cli import main

sys.exit(main())
