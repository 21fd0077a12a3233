"""The one exception type users see.

Every failure caused by input (a path, a file, a line, a config key) is raised as a
``StarbenchError`` whose message names the culprit and what was expected. The CLI prints it
without a traceback and exits with code 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations


class StarbenchError(Exception):
    """A user-facing error: the message says what is wrong and where."""

    exit_code = 2
