"""``python -m sessionflow``: the ``sessionflow`` command line."""

from sessionflow.entrypoints.cli import main

if __name__ == "__main__":
    main()
