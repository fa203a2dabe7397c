"""``python -m geogan`` runs the command-line interface (used by ``torchrun -m geogan``)."""

from geogan.cli import main

if __name__ == "__main__":
    main()
