"""`python -m receiver.cli` runs the console script."""

from receiver.cli import main

main(prog_name="rollback-receiver")
