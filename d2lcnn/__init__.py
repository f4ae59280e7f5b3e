"""d2lcnn: the helper package of the d2lcnn course on convolutional neural networks.

``import d2lcnn as d2l`` runs code written for the d2l book's PyTorch helpers (the names the CNN
chapters use), on current Python, numpy and PyTorch: the classic functions of d2l 0.17 and
d2l-zh (``train_ch6``, ``load_data_fashion_mnist``) and the class API of d2l 1.0, the current
d2l.ai (``Classifier``, ``Trainer``, ``FashionMNIST``).

The import stays light: torchvision is imported only to download a data set, and
``matplotlib.pyplot`` (``d2l.plt``) on first use (``python benchmarks/startup.py`` measures it).

Modules, one job each (imports point down this list): ``classes`` (d2l 1.0's class API) ->
``train`` (the one training loop) -> ``distributed`` (torchrun), ``checkpoint`` (save, resume,
random states), ``autotune`` (layout and precision, timed once and remembered), ``data``
(Fashion-MNIST, batches) -> ``device``, ``precision``, ``memory``, ``settings``, ``metrics``,
``plot``, ``summary``, ``ops``, ``models``.
"""

import atexit
import gc

import torch

from .aliases import (  # d2l's framework aliases (d2l.tensor, d2l.size, ...): aliases.py
    abs,
    arange,
    argmax,
    astype,
    concat,
    cos,
    cosh,
    exp,
    eye,
    float32,
    int32,
    linspace,
    log,
    matmul,
    meshgrid,
    nn_Module,
    normal,
    numpy,
    ones,
    rand,
    randn,
    reduce_mean,
    reduce_sum,
    reshape,
    sin,
    sinh,
    size,
    stack,
    tanh,
    tensor,
    to,
    transpose,
    zeros,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .classes import (
    Classifier,
    DataModule,
    FashionMNIST,
    HyperParameters,
    Module,
    ProgressBoard,
    Trainer,
    add_to_class,
    init_cnn,
)
from .classic import MultiGPUError, evaluate_accuracy, sgd, split_batch, train_epoch_ch3
from .data import (
    FASHION_MNIST_LABELS,
    DataError,
    DataNotFoundError,
    ImageBatches,
    get_fashion_mnist_labels,
    load_arrays,
    load_data_fashion_mnist,
    load_data_mnist,
)
from .device import cpu, gpu, num_gpus, resolve_device, try_all_gpus, try_gpu
from .distributed import DistributedError, World, init_distributed, is_main, world
from .interpret import (
    fgsm,
    grad_cam,
    integrated_gradients,
    occlusion,
    pgd,
    rank_correlation,
    saliency,
)
from .metrics import Accumulator, Timer, accuracy
from .models import MODELS, Residual, ResNeXtBlock
from .models import resnet18_small as resnet18  # d2l.resnet18: the book's multi-GPU version
from .ops import (
    batch_norm,
    conv_output_size,
    corr2d,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_multi_in_out_1x1,
    pool2d,
)
from .plot import Animator, set_figsize, show_images, use_svg_display
from .settings import is_quick, pick_setting
from .summary import LayerError, Summary, layer_summary, print_shapes
from .train import (
    DeviceMemoryError,
    EpochStats,
    History,
    evaluate_accuracy_gpu,
    init_xavier,
    train,
    train_ch6,
)

# Python's cyclic garbage collector is told to leave alone what the imports above made (torch's
# modules, functions and classes: objects that live until the process ends). Every full collection
# in a run then walks only the run's own objects, and at exit the interpreter does not walk and free
# torch (nor torch._dynamo, which the first torch.optim optimizer imports) object by object: the
# operating system takes the memory back at once. Measured side by side in
# benchmarks/results/cpu-startup-phases.md (python benchmarks/startup.py --phases). What this
# costs: cyclic garbage made before `import d2lcnn` is never collected; what is made after it is
# collected as usual; finalizers of objects still alive at exit may not run (Python never promised
# that they would).
gc.freeze()
atexit.register(gc.freeze)

# Same seed, same run, from the first cell: torch 2.14 starts every process from a different seed
# (torch.initial_seed() differs between two fresh processes), so a network built before a
# notebook's first torch.manual_seed gets different biases in every run (d2l's Xavier init, as
# the book's, re-draws only the weights). A notebook run top to bottom in a fresh kernel must give
# the run stored in it, so the import starts PyTorch's generators from seed 0; torch.seed() draws
# a random seed again, for anyone who wants one.
torch.manual_seed(0)

__version__ = "0.2.0"  # the one place the version is written (pyproject.toml reads it)

__all__ = [
    # d2l drop-in names
    "Accumulator", "Animator", "Timer", "accuracy", "corr2d", "cpu", "evaluate_accuracy_gpu",
    "get_fashion_mnist_labels", "gpu", "load_data_fashion_mnist", "num_gpus", "plt",
    "set_figsize", "show_images", "train_ch6", "try_all_gpus", "try_gpu", "use_svg_display",
    # d2l 1.0 class API (d2l.ai)
    "Classifier", "DataModule", "FashionMNIST", "HyperParameters", "Module", "ProgressBoard",
    "ResNeXtBlock", "Trainer", "add_to_class", "init_cnn",
    # data
    "FASHION_MNIST_LABELS", "DataError", "DataNotFoundError", "ImageBatches", "load_arrays",
    "load_data_mnist", "is_quick", "pick_setting",
    # from-scratch operations
    "batch_norm", "conv_output_size", "corr2d_multi_in", "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1", "pool2d",
    # training
    "DeviceMemoryError", "EpochStats", "History", "init_xavier", "load_checkpoint", "resolve_device", "save_checkpoint",
    "train",
    # several processes (torchrun)
    "DistributedError", "World", "init_distributed", "is_main", "world",
    # shapes and models
    "LayerError", "MODELS", "Summary", "layer_summary", "print_shapes",
    # looking inside a trained network (chapter 14)
    "fgsm", "grad_cam", "integrated_gradients", "occlusion", "pgd", "rank_correlation", "saliency",
    # zh.d2l.ai (d2l-zh 2.0) and d2l 0.17: framework aliases, classic functions, multi-GPU names
    "abs", "arange", "argmax", "astype", "concat", "cos", "cosh", "exp", "eye", "float32",
    "int32", "linspace", "log", "matmul", "meshgrid", "nn_Module", "normal", "numpy", "ones",
    "rand", "randn", "reduce_mean", "reduce_sum", "reshape", "sin", "sinh", "size", "stack",
    "tanh", "tensor", "to", "transpose", "zeros",
    "MultiGPUError", "Residual", "evaluate_accuracy", "resnet18", "sgd", "split_batch",
    "train_epoch_ch3",
]  # fmt: skip


def __getattr__(name: str) -> object:
    if name == "plt":  # matplotlib.pyplot, imported on first use (see d2lcnn/plot.py)
        from . import plot

        return plot.plt
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"plt"})
