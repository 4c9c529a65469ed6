"""Simulated cold-chain loggers for coldchain: ``python -m simulators --help``.

The command line to run a simulated fleet or a load generator against any
broker. The generators themselves live in :mod:`coldchain.simulation`, because
``coldchain demo`` replays the same fleet from an installed package; this folder
holds only the command line and is not part of the installed package.
"""
