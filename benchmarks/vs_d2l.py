"""Side-by-side benchmark: the d2l book's pipeline vs d2lcnn, same model, same data, same recipe.

    python benchmarks/vs_d2l.py --models lenet,alexnet --epochs 1 --subset 10000

For each model, runs alternate between the two implementations, each in a fresh subprocess:

* d2l:    ``d2l.load_data_fashion_mnist`` (torchvision DataLoader, per-sample PIL resize,
          4 workers) + ``d2l.train_ch6``, exactly as the book calls them;
* d2lcnn: ``d2lcnn.load_data_fashion_mnist`` (uint8 tensors, batches by index, resize per batch
          on the device) + ``d2lcnn.train`` with its default speed switches.

Both build the model from ``d2lcnn.models`` with the same seed (seed + r in repeat r, so repeats
are independent samples) and the book's learning rate and batch size, and train on the same
class-balanced subset of Fashion-MNIST. Speeds are the best of the repeats, accuracies and
memory their mean. Reported:

* wall examples/s: training images x epochs / wall time of the whole training call (data loading,
  start-up and evaluation included) -- the figure a learner waits for;
* own examples/s: what each trainer reports itself (d2l's timer leaves data loading out; d2lcnn's
  per-epoch figure includes it);
* test accuracy on the same test subset; peak memory: RSS of the process tree (d2l's loader
  workers included), sampled every 20 ms, or peak CUDA memory on a GPU.

With ``--api script`` each run is a whole fresh process of the book's LeNet section as a reader
runs it (d2l 0.17 / d2l-zh, ``chapter_convolutional-neural-networks/lenet``): the section's code
with only its import line changed (``from d2l import torch as d2l`` or ``import d2lcnn as d2l``),
``torch.manual_seed`` before the network, ``num_epochs`` from ``--epochs``, all 60,000 training and
10,000 test images. Timed from outside: interpreter start, ``import torch``, data, training,
evaluation and exit. One unmeasured run of each side first (the file cache warm; d2lcnn's 'auto'
decision then remembered, as on a learner's second run), then the two sides alternate.

With ``--api classes`` each run is the d2l 1.0 book's training cell instead (LeNet from its lenet
section, AlexNet from its alexnet section), the same code on both sides with ``d2l`` bound to
``d2l.torch`` (d2l 1.0.3) or to ``d2lcnn``: the book's model class (:func:`book_classes`, written
as the book writes it, on ``d2l.Classifier``), ``d2l.FashionMNIST(batch_size=..., resize=...)``,
``model.apply_init(..., d2l.init_cnn)`` where the book calls it, ``d2l.Trainer(max_epochs=E,
num_gpus=1)`` and ``trainer.fit(model, data)`` (d2lcnn's runs through ``d2lcnn.train``), with the
book's learning rates and batch size. Wall examples/s time that whole cell (data construction
included); test accuracy is ``d2lcnn.evaluate_accuracy_gpu`` on each side's validation loader (the
same test subset) after ``fit``; neither trainer reports a speed of its own.

d2l is not a dependency of the course. It is installed in the benchmark's own environment only
(``make bench-env``: ``pip install --no-deps d2l==1.0.3`` plus pandas, scipy, requests, psutil).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import redirect_stdout, suppress
from pathlib import Path
from typing import NamedTuple

from torch import nn

ROOT = Path.cwd()
DEFAULT_MODELS = "lenet,alexnet,vgg11_4,nin,googlenet,bn_lenet,resnet18,densenet"


class BookRun(NamedTuple):
    """How a section of the d2l 1.0 book trains its model (``--api classes``)."""

    lr: float
    batch_size: int
    resize: tuple[int, int]
    apply_init: bool  # model.apply_init([first batch], d2l.init_cnn) before fit, as the section


BOOK_RUNS = {
    "lenet": BookRun(lr=0.1, batch_size=128, resize=(28, 28), apply_init=True),
    "alexnet": BookRun(lr=0.01, batch_size=128, resize=(224, 224), apply_init=False),
}


def book_classes(d2l) -> dict[str, type]:
    """The d2l 1.0 book's model classes, as its sections write them, on ``d2l.Classifier`` of the
    given module (``d2l.torch`` or ``d2lcnn``): both sides of the benchmark run this code, and
    ``tests/test_d2l_book.py`` checks these same classes on d2lcnn. ``nn`` is the module's global,
    as in the book: a name of this function's would land in ``save_hyperparameters()``'s hparams.
    """

    class LeNet(d2l.Classifier):  # chapter_convolutional-neural-networks/lenet
        """The LeNet-5 model."""

        def __init__(self, lr=0.1, num_classes=10):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(
                nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(),
                nn.AvgPool2d(kernel_size=2, stride=2),
                nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(),
                nn.AvgPool2d(kernel_size=2, stride=2),
                nn.Flatten(),
                nn.LazyLinear(120), nn.Sigmoid(),
                nn.LazyLinear(84), nn.Sigmoid(),
                nn.LazyLinear(num_classes))  # fmt: skip

    class AlexNet(d2l.Classifier):  # chapter_convolutional-modern/alexnet
        def __init__(self, lr=0.1, num_classes=10):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(
                nn.LazyConv2d(96, kernel_size=11, stride=4, padding=1),
                nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
                nn.LazyConv2d(256, kernel_size=5, padding=2), nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
                nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
                nn.LazyConv2d(256, kernel_size=3, padding=1), nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
                nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
                nn.LazyLinear(4096), nn.ReLU(),nn.Dropout(p=0.5),
                nn.LazyLinear(num_classes))  # fmt: skip
            self.net.apply(d2l.init_cnn)

    return {"lenet": LeNet, "alexnet": AlexNet}


# --- measured inside a worker subprocess ------------------------------------------------------------
class PeakMemory:
    """Peak memory of this process and its children (RSS), or peak CUDA memory."""

    def __init__(self, cuda: bool) -> None:
        self.cuda, self.peak, self._stop = cuda, 0, threading.Event()

    def __enter__(self):
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            try:
                procs = [me, *me.children(recursive=True)]
                self.peak = max(
                    self.peak, sum(p.memory_info().rss for p in procs if p.is_running())
                )
            except psutil.Error:
                pass
            self._stop.wait(0.02)

    def __exit__(self, *exc) -> None:
        if self.cuda:
            import torch

            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()


def torchvision_layout(tmp: Path) -> Path:
    """Uncompressed IDX files in torchvision's layout (``<root>/FashionMNIST/raw``), for d2l."""
    import d2lcnn

    source = Path(d2lcnn.load_arrays().source)
    raw = tmp / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for path in source.iterdir():
        if path.name.endswith(".gz"):
            with gzip.open(path) as f, open(raw / path.name[:-3], "wb") as out:
                shutil.copyfileobj(f, out)
        elif "ubyte" in path.name:
            shutil.copy(path, raw / path.name)
    return tmp


def worker(spec: dict) -> dict:
    if spec.get("api") == "classes":
        return book_worker(spec)
    import torch

    import d2lcnn
    from d2lcnn.data import ImageBatches, balanced_subset

    recipe = d2lcnn.MODELS[spec["model"]]
    device = d2lcnn.resolve_device(spec["device"])
    batch_size, lr, resize = spec["batch_size"] or recipe.batch_size, recipe.lr, recipe.resize
    arrays = d2lcnn.load_arrays()
    train_idx = balanced_subset(arrays.train_labels, spec["subset"])
    test_idx = balanced_subset(arrays.test_labels, spec["test_subset"])
    torch.manual_seed(spec["seed"])
    net = recipe.build()
    out = io.StringIO()
    result = {"impl": spec["impl"]}
    if spec["impl"] == "d2l":
        import matplotlib

        matplotlib.use("Agg")
        import d2l.torch as d2l  # noqa: I001  (the reference, from the benchmark environment)

        tmp = Path(tempfile.mkdtemp(prefix="bench-d2l-"))
        try:
            os.makedirs(torchvision_layout(tmp) / "cwd")
            os.chdir(tmp / "cwd")  # d2l reads from ../data
            with PeakMemory(device.type == "cuda") as mem:
                tic = time.perf_counter()
                with redirect_stdout(out):
                    full_train, full_test = d2l.load_data_fashion_mnist(batch_size, resize=resize)
                    Subset, DataLoader = torch.utils.data.Subset, torch.utils.data.DataLoader
                    workers = d2l.get_dataloader_workers()
                    train_iter = DataLoader(Subset(full_train.dataset, train_idx.tolist()), batch_size,
                                            shuffle=True, num_workers=workers)  # fmt: skip
                    test_iter = DataLoader(Subset(full_test.dataset, test_idx.tolist()), batch_size,
                                           shuffle=False, num_workers=workers)  # fmt: skip
                    d2l.train_ch6(net, train_iter, test_iter, spec["epochs"], lr, device)
                wall = time.perf_counter() - tic
        finally:
            os.chdir(ROOT)
            shutil.rmtree(tmp, ignore_errors=True)
        text = out.getvalue()
        result["test_acc"] = float(re.findall(r"test acc (\d\.\d+)", text)[-1])
        result["own_eps"] = float(re.findall(r"([\d.]+) examples/sec", text)[-1])
    else:
        with PeakMemory(device.type == "cuda") as mem:
            tic = time.perf_counter()
            train_iter = ImageBatches(arrays.train_images[train_idx], arrays.train_labels[train_idx],
                                      batch_size, shuffle=True, resize=resize, seed=spec["seed"])  # fmt: skip
            test_iter = ImageBatches(arrays.test_images[test_idx], arrays.test_labels[test_idx],
                                     batch_size, resize=resize)  # fmt: skip
            history = d2lcnn.train(net, train_iter, test_iter, spec["epochs"], lr, device,
                                   plot=False, verbose=False, **spec.get("switches", {}))  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - tic
        result["test_acc"] = history.final.test_acc
        result["own_eps"] = sum(e.examples_per_sec for e in history) / len(history)
    result["wall_eps"] = spec["subset"] * spec["epochs"] / wall
    result["wall_s"] = wall
    result["peak_mb"] = mem.peak / 2**20
    return result


def use_subsets(data, train_size: int, test_size: int) -> None:
    """Cut the training and validation data of a ``FashionMNIST`` (d2l 1.0's or d2lcnn's) to their
    first ``train_size`` / ``test_size`` images class by class, the d2l way: ``data.train`` and
    ``data.val`` become ``Subset``s, which both ``get_dataloader``s serve. The same images on both
    sides (both data sets have torchvision's ``targets``)."""
    import torch

    from d2lcnn.data import balanced_subset

    for name, n in (("train", train_size), ("val", test_size)):
        dataset = getattr(data, name)
        if n < len(dataset):
            keep = balanced_subset(torch.as_tensor(dataset.targets), n).tolist()
            setattr(data, name, torch.utils.data.Subset(dataset, keep))


def book_worker(spec: dict) -> dict:
    """One run of the d2l 1.0 book's training cell (``--api classes``), with ``d2l`` bound to
    ``d2l.torch`` or to ``d2lcnn``: the same code on both sides."""
    import torch

    import d2lcnn

    book = BOOK_RUNS[spec["model"]]
    device = d2lcnn.resolve_device(spec["device"])
    num_gpus = 0 if device.type == "cpu" else 1  # the book's num_gpus=1, unless --device cpu
    batch_size = spec["batch_size"] or book.batch_size
    tmp = None
    if spec["impl"] == "d2l":
        import matplotlib

        matplotlib.use("Agg")
        import d2l.torch as d2l  # noqa: I001  (the reference, from the benchmark environment)

        tmp = Path(tempfile.mkdtemp(prefix="bench-d2l-"))
        os.makedirs(torchvision_layout(tmp) / "cwd")
        os.chdir(tmp / "cwd")  # d2l 1.0's FashionMNIST reads ../data
    else:
        d2l = d2lcnn
    # Imports are not the training cell's. `import d2l.torch` brings these in (torch._dynamo via
    # torchvision: ~1-2 s on a 2-core CPU); d2lcnn imports them on first use (torch.optim's first
    # optimizer, the notebook check), inside the cell. Both sides have them before the clock.
    import torch._dynamo  # noqa: F401

    with suppress(ImportError):  # d2lcnn does without IPython
        import IPython  # noqa: F401

    Model = book_classes(d2l)[spec["model"]]
    torch.manual_seed(spec["seed"])
    try:  # stdout: d2l's figures as text (no Jupyter), d2lcnn's training lines
        with PeakMemory(device.type == "cuda") as mem, redirect_stdout(io.StringIO()):
            tic = time.perf_counter()
            trainer = d2l.Trainer(max_epochs=spec["epochs"], num_gpus=num_gpus)
            data = d2l.FashionMNIST(batch_size=batch_size, resize=book.resize)
            use_subsets(data, spec["subset"], spec["test_subset"])
            model = Model(lr=book.lr)
            if book.apply_init:
                model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
            trainer.fit(model, data)
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - tic
        test_acc = d2lcnn.evaluate_accuracy_gpu(model, data.get_dataloader(False))
    finally:
        if tmp is not None:
            os.chdir(ROOT)
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "impl": spec["impl"],
        "train_images": len(data.train),
        "test_images": len(data.val),
        "test_acc": test_acc,
        "wall_eps": len(data.train) * spec["epochs"] / wall,
        "wall_s": wall,
        "peak_mb": mem.peak / 2**20,
    }


# --- --api script: the book's section as a whole process ------------------------------------
BOOK_LENET_SCRIPT = """\
import torch
from torch import nn
{import_line}

torch.manual_seed({seed})
net = nn.Sequential(
    nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(),
    nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
    nn.Linear(120, 84), nn.Sigmoid(),
    nn.Linear(84, 10))
batch_size = 256
train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size=batch_size)
lr, num_epochs = 0.9, {epochs}
d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr, d2l.try_gpu())
"""
IMPORT_LINES = {"d2l": "from d2l import torch as d2l", "d2lcnn": "import d2lcnn as d2l"}


def script_run(impl: str, seed: int, epochs: int, tmp: Path) -> dict:
    """One fresh process of the book's LeNet section (``--api script``), timed from outside.
    ``tmp`` holds ``data/`` in torchvision's layout (d2l reads ``../data``), ``cwd/`` to run in and
    ``cache/`` (d2lcnn's cache folder: its remembered decision)."""
    code = BOOK_LENET_SCRIPT.format(import_line=IMPORT_LINES[impl], seed=seed, epochs=epochs)
    env = {k: v for k, v in os.environ.items() if k not in ("D2LCNN_QUICK", "D2LCNN_REMEASURE")}
    env.update(MPLBACKEND="Agg", XDG_CACHE_HOME=str(tmp / "cache"))
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp / "cwd", env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - tic
    if proc.returncode != 0:
        raise RuntimeError(f"the {impl} run of the book's LeNet failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "test_acc": float(re.findall(r"test acc (\d\.\d+)", proc.stdout)[-1])}


def whole_process(args: argparse.Namespace) -> str:
    """``--api script``: the book's LeNet section, d2l vs d2lcnn, whole fresh processes."""
    import statistics

    tmp = Path(tempfile.mkdtemp(prefix="bench-script-"))
    try:
        os.makedirs(torchvision_layout(tmp) / "cwd")
        runs: dict[str, list[dict]] = {"d2l": [], "d2lcnn": []}
        for impl in runs:  # unmeasured: file cache warm, d2lcnn's decision remembered
            script_run(impl, args.seed, args.epochs, tmp)
        for r in range(args.repeats):
            for impl in ("d2l", "d2lcnn") if r % 2 == 0 else ("d2lcnn", "d2l"):
                runs[impl].append(script_run(impl, args.seed, args.epochs, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def cell(impl: str) -> str:
        s = sorted(x["wall_s"] for x in runs[impl])
        return f"{statistics.median(s):.2f} ({s[0]:.2f}-{s[-1]:.2f})"

    med = {impl: statistics.median(x["wall_s"] for x in runs[impl]) for impl in runs}
    acc = {impl: statistics.mean(x["test_acc"] for x in runs[impl]) for impl in runs}
    lines = [
        "| run | d2l 1.0.3: median s (min-max) | d2lcnn: median s (min-max) | ratio of medians "
        "| d2l test acc | d2lcnn test acc |",
        "|---|---|---|---|---|---|",
        f"| the book's LeNet, 60,000 x {args.epochs} + 10,000 test, {args.repeats} fresh processes "
        f"each | {cell('d2l')} | {cell('d2lcnn')} | **{med['d2l'] / med['d2lcnn']:.2f}x** | "
        f"{acc['d2l']:.3f} | {acc['d2lcnn']:.3f} |",
    ]
    print("\n".join(lines), flush=True)
    return "\n".join(lines)


# --- the driver -----------------------------------------------------------------------------
def run_worker(spec: dict) -> dict:
    env = dict(os.environ)
    env.pop("D2LCNN_QUICK", None)
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['impl']} run of {spec['model']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def device_name(spec: str) -> str:
    import torch

    import d2lcnn

    device = d2lcnn.resolve_device(spec)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {d2lcnn.device.describe_cpu()}"


def compare(args: argparse.Namespace) -> str:
    import d2lcnn

    classes = args.api == "classes"
    rows = []
    own = [] if classes else ["d2l own ex/s", "d2lcnn own ex/s"]  # neither Trainer reports one
    columns = ["model", "input", "train images x epochs", "d2l wall ex/s", "d2lcnn wall ex/s",
               "ratio", *own, "d2l test acc", "d2lcnn test acc", "d2l peak MB", "d2lcnn peak MB"]  # fmt: skip
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    print(header, flush=True)
    for model in args.models.split(","):
        if classes:
            book = BOOK_RUNS[model]
            size, batch = book.resize[0], args.batch_size or book.batch_size
        else:
            recipe = d2lcnn.MODELS[model]
            size, batch = recipe.resize or 28, args.batch_size or recipe.batch_size
        large = size != 28
        subset = args.subset_large if large else args.subset
        epochs = args.epochs_large if large else args.epochs
        test_subset = args.test_subset_large if large else args.test_subset
        repeats = args.repeats_large if large else args.repeats
        if not classes:
            subset = max(subset, 5 * batch)  # d2l's train_ch6 divides by len(train_iter) // 5
        runs: dict[str, list[dict]] = {"d2l": [], "d2lcnn": []}
        for r in range(repeats):
            order = ("d2l", "d2lcnn") if r % 2 == 0 else ("d2lcnn", "d2l")
            for impl in order:
                spec = dict(impl=impl, model=model, device=args.device, epochs=epochs,
                            subset=subset, test_subset=test_subset, seed=args.seed + r,
                            batch_size=args.batch_size, api=args.api)  # fmt: skip
                runs[impl].append(run_worker(spec))

        def best(impl: str, key: str, runs: dict[str, list[dict]] = runs) -> float:
            values = [x[key] for x in runs[impl]]
            return max(values) if key.endswith("eps") else sum(values) / len(values)

        if classes:  # the images each side trained on: the subset, or all there are
            counts = {x["train_images"] for impl in runs for x in runs[impl]}
            if len(counts) != 1:
                raise RuntimeError(f"{model}: the two sides trained on {sorted(counts)} images")
            subset = counts.pop()
        a, b = best("d2l", "wall_eps"), best("d2lcnn", "wall_eps")
        cells = [model, f"{size}x{size}", f"{subset:,} x {epochs}", f"{a:,.1f}", f"{b:,.1f}",
                 f"**{b / a:.2f}x**"]  # fmt: skip
        if not classes:
            cells += [f"{best('d2l', 'own_eps'):,.1f}", f"{best('d2lcnn', 'own_eps'):,.1f}"]
        cells += [f"{best('d2l', 'test_acc'):.3f}", f"{best('d2lcnn', 'test_acc'):.3f}",
                  f"{best('d2l', 'peak_mb'):,.0f}", f"{best('d2lcnn', 'peak_mb'):,.0f}"]  # fmt: skip
        row = "| " + " | ".join(cells) + " |"
        print(row, flush=True)
        rows.append(row)
    return header + "\n" + "\n".join(rows)


def scaling(args: argparse.Namespace) -> str:
    """d2lcnn's training throughput against batch size (compute only, synthetic batches).

    With the trainer's switches as ``d2lcnn.train`` sets them: memory kept on a CPU, the layout
    that ``channels_last='auto'`` measures faster at each batch size, ``precision='auto'``.
    """
    import torch

    import d2lcnn

    device = d2lcnn.resolve_device(args.device)
    sizes = [64, 128, 256, 512, 1024]
    lines = ["| model | input | " + " | ".join(f"batch {b}" for b in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]  # fmt: skip
    print(lines[0] + "\n" + lines[1], flush=True)
    for model, size in (("lenet", 28), ("resnet18", 96)):
        cells = []
        for bs in sizes:
            steps = max(
                2, min(50, (args.scaling_images if device.type == "cpu" else 20 * 1024) // bs)
            )
            torch.manual_seed(0)  # random images: the speed, not the accuracy, is measured
            images = torch.randint(0, 256, ((steps + 2) * bs, 1, size, size), dtype=torch.uint8)
            data = d2lcnn.ImageBatches(images, torch.randint(0, 10, (images.shape[0],)), bs)
            # through d2lcnn.train itself: its switches ('auto' layout and precision timed
            # afresh, memory kept on a CPU), the first two steps (warm-up) then the timed ones
            d2lcnn.train(d2lcnn.MODELS[model].build(), data, None, 1, 0.01, device,
                         max_steps=2, remeasure=True, plot=False, verbose=False)  # fmt: skip
            h = d2lcnn.train(d2lcnn.MODELS[model].build(), data, None, 1, 0.01, device,
                             max_steps=steps, plot=False, verbose=False)  # fmt: skip
            cells.append(f"{h[0].examples_per_sec:,.0f}")
        line = f"| {model} | {size}x{size} | " + " | ".join(cells) + " |"
        print(line, flush=True)
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/vs_d2l.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--api", choices=("classic", "classes", "script"), default="classic",
                        help="classic: load_data_fashion_mnist + train_ch6 on d2lcnn's models; "
                        "classes: the d2l 1.0 book's classes (Classifier, FashionMNIST, "
                        "Trainer.fit); script: the book's LeNet section as a whole process")  # fmt: skip
    parser.add_argument("--models", default=None,
                        help=f"default: {DEFAULT_MODELS} (classic), {','.join(BOOK_RUNS)} "
                        "(classes)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--epochs-large", type=int, default=None,
                        help="epochs for the 96/224-px models (default: --epochs)")  # fmt: skip
    parser.add_argument(
        "--subset", type=int, default=10000, help="training images for 28x28 models"
    )
    parser.add_argument("--subset-large", type=int, default=None,
                        help="training images for the 96/224-px models (default: --subset)")  # fmt: skip
    parser.add_argument("--test-subset", type=int, default=1000)
    parser.add_argument("--test-subset-large", type=int, default=None,
                        help="test images for the 96/224-px models (default: --test-subset)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=None, help="default: the book's")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--repeats", type=int, default=1, help="alternating runs per implementation"
    )
    parser.add_argument("--repeats-large", type=int, default=None,
                        help="repeats for the 96/224-px models (default: --repeats)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scaling", action="store_true", help="also the batch-size scaling table")
    parser.add_argument(
        "--scaling-images", type=int, default=2048, help="images per point on a CPU"
    )
    parser.add_argument("--output", type=Path, help="also write the tables (Markdown) to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    args.subset_large = args.subset_large or args.subset
    args.epochs_large = args.epochs_large or args.epochs
    args.test_subset_large = args.test_subset_large or args.test_subset
    args.repeats_large = args.repeats_large or args.repeats
    classes = args.api == "classes"
    if args.api == "script" and args.models not in (None, "lenet"):
        parser.error("--api script runs the book's LeNet section only: leave out --models")
    args.models = args.models or (",".join(BOOK_RUNS) if classes else DEFAULT_MODELS)
    import d2lcnn

    known = BOOK_RUNS if classes else d2lcnn.MODELS
    unknown = [m for m in args.models.split(",") if m not in known]
    if unknown:
        parser.error(
            f"--api {args.api} knows no model {', '.join(unknown)}: use {', '.join(known)}"
        )
    command = "python benchmarks/vs_d2l.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"device: {device_name(args.device)}", flush=True)
    text = [
        f"Device: {device_name(args.device)}. Command: `{command}` ({time.strftime('%Y-%m-%d')}).",
        "",
    ]
    if args.api == "script":
        text += [
            "The book's LeNet section (d2l 0.17 / d2l-zh) run as a reader runs it, only the import "
            "line changed; each figure is a whole fresh process timed from outside (interpreter "
            "start, `import torch`, data, training, test, exit).",
            "",
            whole_process(args),
        ]
    else:
        if classes:
            text += [
                "d2l 1.0's class API, the same code on both sides: the book's model class on "
                "`d2l.Classifier`, `d2l.FashionMNIST`, `d2l.Trainer(max_epochs, num_gpus=1).fit` "
                "(d2l 1.0.3; d2lcnn's runs through `d2l.train`). Wall ex/s: the whole training "
                "cell, data construction included; test accuracy: `d2l.evaluate_accuracy_gpu` "
                "after fit.",
                "",
            ]
        text.append(compare(args))
    if args.scaling:
        print(flush=True)
        text += [
            "",
            "d2lcnn training throughput (examples/s) against batch size:",
            "",
            scaling(args),
        ]
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
