"""bkbench engine: transport, protocol, link, flash operations, backups, images, analysis, simulator.

Never imports Textual: the TUI and the CLI both drive this package.
"""

__version__ = "0.1.0"
