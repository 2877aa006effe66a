"""`python -m cli` runs the `toc` command."""

from cli.main import cli

if __name__ == "__main__":
    cli()
