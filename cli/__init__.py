"""The one command line, ``cxr``: a subcommand per verb (see :mod:`cli.main`)."""
