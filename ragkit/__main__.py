"""``python -m ragkit``: the same as the ``ragkit`` command."""

from .cli import main

if __name__ == "__main__":
    main()
