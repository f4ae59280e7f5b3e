"""Figures: d2l's ``Animator`` and ``show_images``, working in Jupyter and in a terminal.

``matplotlib.pyplot`` is imported on first use (``plt`` here, ``d2l.plt``, or the first figure),
not with the package: it is a quarter of a second of start-up, and importing it late also lets a
notebook's ``%matplotlib inline`` or ``MPLBACKEND`` choose the backend first.

Chinese figure text (the notebooks of notebooks/zh) is drawn with the font bundled in
d2lcnn/fonts/, a subset of Noto Sans CJK SC: nothing to install on Binder, Colab or CI. It is
registered with matplotlib when d2lcnn first draws or hands out pyplot (``d2l.plt``,
``Animator``, ``show_images``, ``set_figsize``; :func:`register_cjk_font`), or at import when
matplotlib is already loaded (a notebook's ``%matplotlib inline``); d2lcnn never imports
matplotlib itself, nor hooks the import system. A script that imports d2lcnn first and then
draws Chinese text with its own ``import matplotlib.pyplot`` uses ``d2l.plt`` instead.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch

# plt: given by __getattr__ below
__all__ = [  # noqa: F822
    "plt", "in_notebook", "set_figsize", "show_live", "use_svg_display", "show_images", "Animator",
]  # fmt: skip


CJK_FONT = Path(__file__).with_name("fonts") / "NotoSansCJKsc-d2lcnn-subset.otf"
CJK_FAMILY = "Noto Sans CJK SC d2lcnn"  # the bundled subset (scripts/cjk_font.py writes it)
# full CJK fonts a machine may have, for the rare character the subset lacks
SYSTEM_CJK_FAMILIES = (
    "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
    "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC", "Noto Sans CJK JP",
)  # fmt: skip
_cjk_registered = False


def register_cjk_font() -> None:
    """Let matplotlib draw Chinese text: register the bundled Noto Sans CJK SC subset.

    matplotlib falls back glyph by glyph along the families of ``font.family`` (not along the
    ``font.sans-serif`` list, of which it uses only the first font found), so the bundled subset
    and the CJK fonts installed here (:data:`SYSTEM_CJK_FAMILIES`) are appended to
    ``font.family``: its first entry (``sans-serif``, i.e. DejaVu Sans) still draws every
    character it has, so English figures do not change; Chinese characters come from the subset,
    and one the subset lacks from a system CJK font. The subset is also put right after DejaVu
    Sans in ``font.sans-serif``. Families not installed are left out (matplotlib would log a
    warning for each one at every text). Runs once; called by d2lcnn itself (see the module
    docstring), so a notebook never needs to.
    """
    global _cjk_registered
    if _cjk_registered:
        return
    _cjk_registered = True
    import matplotlib
    from matplotlib import font_manager

    try:
        font_manager.fontManager.addfont(str(CJK_FONT))
    except (OSError, RuntimeError, ValueError) as err:  # a damaged install: say so, draw on
        warnings.warn(f"d2lcnn: the bundled CJK font {CJK_FONT} could not be loaded ({err}); "
                      "Chinese figure text needs a CJK font installed (fonts-noto-cjk)",
                      stacklevel=2)  # fmt: skip
    installed = {font.name for font in font_manager.fontManager.ttflist}
    fallback = [name for name in (CJK_FAMILY, *SYSTEM_CJK_FAMILIES) if name in installed]
    rc = matplotlib.rcParams
    family = [rc["font.family"]] if isinstance(rc["font.family"], str) else list(rc["font.family"])
    rc["font.family"] = family + [name for name in fallback if name not in family]
    sans = [name for name in rc["font.sans-serif"] if name != CJK_FAMILY]
    at = sans.index("DejaVu Sans") + 1 if "DejaVu Sans" in sans else 0
    rc["font.sans-serif"] = [*sans[:at], CJK_FAMILY, *sans[at:]]


if "matplotlib.font_manager" in sys.modules:  # pyplot came first (``%matplotlib inline``): the
    register_cjk_font()  # font is registered now, at no cost (no import of matplotlib here)


def _pyplot() -> ModuleType:
    import matplotlib.pyplot

    register_cjk_font()
    return matplotlib.pyplot


def __getattr__(name: str) -> object:
    if name == "plt":  # d2l's name for pyplot, imported when first asked for
        return _pyplot()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (where figures are shown inline).

    A kernel has imported IPython long before any cell runs, so where IPython is not imported
    (a script, ``python -m d2lcnn``) the answer is no without importing it (0.2 s a process:
    ``benchmarks/results/cpu-startup-phases.md``)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def show_live(fig, handle=None):
    """Show ``fig`` in the notebook, or redraw it in place where ``handle`` showed it before.

    Returns the handle to pass next time. The figure stays in the notebook as one output.
    """
    from IPython.display import display

    if handle is None:
        return display(fig, display_id=True)
    handle.update(fig)
    return handle


def use_svg_display() -> None:
    """Kept for d2l compatibility; figures are PNG so notebooks stay small."""


def set_figsize(figsize: tuple[float, float] = (3.5, 2.5)) -> None:
    """Set matplotlib's default figure size (d2l name)."""
    _pyplot().rcParams["figure.figsize"] = figsize


def _as_image(img: object) -> object:
    if torch.is_tensor(img):
        img = img.detach().cpu()
        if img.ndim == 3 and img.shape[0] in (1, 3):  # (C, H, W) -> (H, W) or (H, W, C)
            img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
        return img.float().numpy()
    return img


def show_images(
    imgs: Sequence[object],
    num_rows: int,
    num_cols: int,
    titles: Sequence[str] | None = None,
    scale: float = 1.5,
):
    """Plot a grid of images (d2l name). ``imgs``: tensors (H, W), (1, H, W), (3, H, W) or arrays.

    Returns the flattened array of axes.
    """
    figsize = (num_cols * scale, num_rows * scale)
    _, axes = _pyplot().subplots(num_rows, num_cols, figsize=figsize, squeeze=False)
    axes = axes.flatten()
    for i, (ax, img) in enumerate(zip(axes, imgs, strict=False)):
        ax.imshow(_as_image(img), cmap="gray")
        ax.axes.get_xaxis().set_visible(False)
        ax.axes.get_yaxis().set_visible(False)
        if titles is not None and i < len(titles):
            ax.set_title(titles[i])
    return axes


class Animator:
    """Plot data that arrives point by point (d2l name): ``add(x, y)`` redraws the figure.

    In Jupyter the figure is shown once and updated in place, and the final figure stays in the
    notebook. Outside Jupyter nothing is drawn while training; call :meth:`show` or use
    ``animator.fig.savefig(path)`` at the end.
    """

    def __init__(
        self,
        xlabel: str | None = None,
        ylabel: str | None = None,
        legend: Sequence[str] | None = None,
        xlim: tuple[float, float] | None = None,
        ylim: tuple[float, float] | None = None,
        xscale: str = "linear",
        yscale: str = "linear",
        fmts: Sequence[str] = ("-", "m--", "g-.", "r:"),
        nrows: int = 1,
        ncols: int = 1,
        figsize: tuple[float, float] = (3.5, 2.5),
    ) -> None:
        self.legend = list(legend or [])
        plt = _pyplot()
        self.fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
        self.axes = axes.flatten()
        self.config = dict(xlabel=xlabel, ylabel=ylabel, xlim=xlim, ylim=ylim,
                           xscale=xscale, yscale=yscale)  # fmt: skip
        self.X: list[list[float]] | None = None
        self.Y: list[list[float]] | None = None
        self.fmts = fmts
        self._live = in_notebook()
        self._handle = None
        plt.close(self.fig)  # we display it ourselves; keeps pyplot from showing it twice

    def _draw(self) -> None:
        ax = self.axes[0]
        ax.cla()
        for x, y, fmt in zip(self.X, self.Y, self.fmts, strict=False):
            ax.plot(x, y, fmt, **({"marker": "o"} if len(x) == 1 else {}))  # one point: show it
        c = self.config
        ax.set_xlabel(c["xlabel"]), ax.set_ylabel(c["ylabel"])
        ax.set_xscale(c["xscale"]), ax.set_yscale(c["yscale"])
        if c["xlim"]:
            ax.set_xlim(c["xlim"])
        if c["ylim"]:
            ax.set_ylim(c["ylim"])
        if self.legend:
            ax.legend(self.legend)
        ax.grid(True)
        self.fig.tight_layout()

    def add(self, x: float | Sequence[float], y: float | Sequence[float | None]) -> None:
        """Append one point per curve; ``None`` in ``y`` skips that curve for this ``x``."""
        if not hasattr(y, "__len__"):
            y = [y]
        n = len(y)
        if not hasattr(x, "__len__"):
            x = [x] * n
        if self.X is None:
            self.X = [[] for _ in range(n)]
            self.Y = [[] for _ in range(n)]
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            if a is not None and b is not None:
                self.X[i].append(a)
                self.Y[i].append(b)
        if self._live:
            self._draw()
            self._handle = show_live(self.fig, self._handle)

    def show(self):
        """Draw the curves and return the figure (save it with ``.savefig(path)``)."""
        if self.X is not None:
            self._draw()
        return self.fig
