"""``python -m starbench`` runs the CLI."""
from starbench.cli import main

if __name__ == "__main__":
    main()
