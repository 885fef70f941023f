"""The ``agentrt`` command line: the application on top of the library.

Every command lives in this package (typer, rich and matplotlib are imported
only here); ``import agentrt`` imports none of it.
"""

from agentrt.cli.app import app, main

__all__ = ["app", "main"]
