"""The ``ragkit`` command: adapters over the library, no logic.

:mod:`.main` holds the group and the query commands, :mod:`.admin` the admin
commands, :mod:`.bench` the benchmarks, :mod:`.progress` the progress lines.
"""
