"""``python -m ragkit``: the same as the ``ragkit`` command."""

from .cli.main import main

if __name__ == "__main__":
    main()
