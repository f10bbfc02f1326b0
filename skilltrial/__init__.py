"""skilltrial: randomized controlled trials of AI-assisted skill learning."""

__version__ = "0.1.0"
