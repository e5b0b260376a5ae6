"""`python -m lake.cli ...` is the same as `lake ...` (used where only an interpreter is known)."""

from lake.cli import main

main()
