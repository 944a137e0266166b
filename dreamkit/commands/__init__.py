"""One module per `dreamkit` subcommand, in the order `dreamkit --help` lists them."""

from dreamkit.commands import dream, fetch_weights, layers

COMMANDS = [dream, layers, fetch_weights]
