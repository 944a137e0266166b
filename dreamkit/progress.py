"""The one progress bar: tqdm.auto's (a widget in notebooks that have ipywidgets, a text bar on
stderr elsewhere), imported without tqdm's warning when a notebook lacks ipywidgets. Every
loop passes `disable=not progress`: the Python API is quiet unless asked, the CLI shows bars
only on a terminal."""

import warnings

from tqdm import TqdmWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
