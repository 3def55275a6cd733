"""``python -m annobridge`` runs the command-line tool."""

from annobridge.converters.cli import main

if __name__ == "__main__":
    main()
