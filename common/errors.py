"""The one exception type a user is meant to see: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (a path, a flag, a file's contents); the message says what to do."""
