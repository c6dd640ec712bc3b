"""webstack's operator commands, one entry point: `python -m ops <command> --stack NAME ...`.

Each command is a module here with `register(subparsers)`; COMMANDS lists them in the order `--help` shows.
"""
