"""The one exception type a user is meant to see: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (a path, a flag, a file's contents); the message says what to do."""


class PortFailure(Exception):
    """A port's function (an implementation reached by module path) raised, exited, or gave what
    cannot be read: the commands print it as one line and exit 1, as a check that comes out
    different does (compare/programs.py's PortError is one)."""
