"""``python -m nirvana``: the same as the ``nirvana`` command."""

from nirvana.cli import main

if __name__ == "__main__":
    main()
