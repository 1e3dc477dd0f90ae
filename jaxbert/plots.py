"""The one matplotlib set-up every figure jaxbert writes shares."""

import contextlib

from . import files


@contextlib.contextmanager
def figure(path: str, *grid: int, dpi: int = 80, **subplots):
  """Yields (fig, axes) of plt.subplots(*grid, **subplots), laid out by matplotlib's constrained
  layout unless told otherwise; saves the figure to PATH when the block ends (written aside and
  renamed) and frees it either way."""
  import matplotlib  # imported late: a second or more, and only the plots need it

  matplotlib.use("Agg")  # files only: no display, whatever the machine has
  from matplotlib import pyplot as plt

  subplots.setdefault("constrained_layout", True)
  fig, axes = plt.subplots(*grid, **subplots)
  try:
    yield fig, axes
    with files.replacing(path) as tmp:
      fig.savefig(tmp, dpi=dpi)
  finally:
    plt.close(fig)
