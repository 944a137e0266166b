"""One module per `dreamkit` subcommand, in the order `dreamkit --help` lists them."""

from dreamkit.commands import (
    direction,
    dream,
    fetch_weights,
    gallery,
    layers,
    linearity,
    reproduce,
    vis,
    zoom,
)

COMMANDS = [dream, layers, vis, direction, linearity, fetch_weights, gallery, reproduce, zoom]
