"""`python -m nanochat_pipeline`: the command line lives in cli/parser.py."""
import sys

from nanochat_pipeline.cli.parser import main

sys.exit(main())
