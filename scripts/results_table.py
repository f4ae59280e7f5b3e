"""Build the README's results and speed sections from stored runs (never typed by hand).

    python scripts/results_table.py          # rewrite the tables in README.md and README.zh.md
    python scripts/results_table.py --check  # exit 1 if either is out of date

Each training chapter tags its main training cell ``main-run``; its stored output holds the
lines printed by ``d2l.train`` / ``d2l.train_ch6`` (device, precision, quick mode if it was on,
data, input size, epochs, accuracies, speed, minutes) and the ``setting: ...`` line of
``d2l.pick_setting``. The speed section is the benchmark's stored tables in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from nbsync import replace_section, title  # noqa: E402

LINES = {
    "setting": re.compile(r"^setting: (\w+)", re.M),
    # "training on cpu (2 threads), fp32: 60,000 train / ..., 10 epochs", with ", quick mode"
    # before the colon in quick mode; runs stored before that change say ", full mode" there
    "device": re.compile(
        r"^training on (.+?), (fp32|\w+ autocast)(?:, (\w+) mode)?: (.+?), (\d+) epochs", re.M
    ),
    "acc": re.compile(r"^loss ([\d.]+|nan), train acc ([\d.]+), test acc ([\d.]+)", re.M),
    "speed": re.compile(r"^([\d.]+) examples/sec on (\S+)", re.M),
    "time": re.compile(r"^(\d+) epochs in ([\d.]+) min of training", re.M),
}


def main_run(path: Path) -> dict | None:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "main-run" in c.metadata.get("tags", [])]
    if not cells:
        return None
    text = "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")
    found = {k: p.search(text) for k, p in LINES.items()}
    if not found["setting"]:  # the setting may be chosen in an earlier cell
        everything = "".join(
            o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "stream"
        )  # fmt: skip
        found["setting"] = LINES["setting"].search(everything)
    if not all(found[k] for k in ("device", "acc", "speed", "time")):
        return None
    dev, acc, speed, minutes = found["device"], found["acc"], found["speed"], found["time"]
    data = dev.group(4)
    size = re.search(r"of \d+x(\d+x\d+)", data)
    images = re.match(r"([\d,]+) train", data)
    setting = found["setting"].group(1) if found["setting"] else "-"
    return {
        "chapter": title(nb).split(":", 1)[-1].strip(),
        "notebook": path.name,
        "gpu": "cuda" in dev.group(1),
        "device": dev.group(1),
        "quick": dev.group(3) == "quick",
        "setting": setting,
        "input": size.group(1) if size else "-",
        "images": images.group(1) if images else "-",
        "epochs": minutes.group(1),
        "test_acc": acc.group(3),
        "speed": f"{float(speed.group(1)):,.0f}",
        "minutes": minutes.group(2),
        "precision": dev.group(2),
    }


def registry(lang: str = "en") -> dict[str, dict]:
    """Each chapter's main-run figures, by notebook name (``03_lenet``), for one edition.

    Prose that quotes another chapter's stored run (its test accuracy, its minutes of training)
    is checked against this registry by ``tests/test_prose.py``; ``--registry`` prints it.
    """
    folder = ROOT / "notebooks" / ("zh" if lang == "zh" else "")
    runs = {path.stem: main_run(path) for path in sorted(folder.glob("*.ipynb"))}
    return {name: run for name, run in runs.items() if run}


TABLE = {  # the results table in each edition's words: header, quick-run mark, closing note
    "en": (
        "| Chapter | Input | GPU: test acc | laptop (2-core CPU): test acc | train images x epochs | "
        "training min | examples/s | device, precision, setting |",
        " (quick run)",
        "Each row is the stored main run of a chapter (cell tag `main-run`), on the full "
        '10,000-image test set. A "-" means no stored run on that kind of machine yet.',
    ),
    "zh": (
        "| 章节 | 输入 | GPU：测试精度 | 笔记本电脑（双核 CPU）：测试精度 | 训练图像数 x 迭代周期 | "
        "训练时间（分钟） | 样本/秒 | 设备、数值精度、设置 |",
        "（快速模式）",
        "每一行是该章中文笔记本自己保存的主训练运行（单元格标签 `main-run`），测试集为完整的 "
        "10,000 张图像。“-”表示还没有在这类机器上保存的运行。",
    ),
}


def table(notebooks: list[Path], lang: str = "en") -> str:
    """The results table of README.md (``lang="zh"``: of README.zh.md, from notebooks/zh)."""
    header, quick_mark, note = TABLE[lang]
    folder = "zh/" if lang == "zh" else ""
    rows = []
    for path in notebooks:
        r = main_run(path)
        if not r:
            continue
        chapter = r["chapter"]
        if lang == "zh":  # the title after "第N章：", as the Chinese notebook writes it
            chapter = re.split("[:：]", title(nbformat.read(path, as_version=4)), maxsplit=1)[-1]
        acc = f"{r['test_acc']}" + (quick_mark if r["quick"] else "")
        gpu, cpu = (acc, "-") if r["gpu"] else ("-", acc)
        rows.append(
            f"| [{chapter.strip()}](notebooks/{folder}{r['notebook']}) | {r['input']} | {gpu} | "
            f"{cpu} | {r['images']} x {r['epochs']} | {r['minutes']} | {r['speed']} | "
            f"{r['device']}, {r['precision']}, {r['setting']} |"
        )
    return header + "\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n" + note


def bench_section() -> str:
    """The benchmark tables, as written by ``benchmarks/vs_d2l.py --output benchmarks/results/...``."""
    parts = []
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        parts.append(path.read_text().strip())
    reproduce = (
        "Reproduce with `make bench` (CPU) or, on a GPU machine, `make bench-env` then "
        "`bash scripts/gpu_session.sh bench` (it writes `benchmarks/results/gpu.md`; on a machine "
        "without Jupyter or network see CONTRIBUTING.md), and `python scripts/results_table.py`."
    )
    return "\n\n".join(parts + [reproduce]) if parts else "No benchmark recorded yet. " + reproduce


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--registry", action="store_true",
                        help="print each chapter's main-run figures (both editions) as JSON")
    args = parser.parse_args()
    if args.registry:
        print(json.dumps({lang: registry(lang) for lang in ("en", "zh")}, indent=1))
        return 0
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = replace_section(text, "results", table(sorted((ROOT / "notebooks").glob("*.ipynb"))))
    new = replace_section(new, "bench", bench_section())
    readme_zh = ROOT / "README.zh.md"  # the Chinese edition's table, from notebooks/zh
    text_zh = readme_zh.read_text()
    new_zh = replace_section(
        text_zh, "results", table(sorted((ROOT / "notebooks" / "zh").glob("*.ipynb")), "zh"),
        "README.zh.md",
    )  # fmt: skip
    if args.check:
        pairs = (("README.md", new, text), ("README.zh.md", new_zh, text_zh))
        stale = [name for name, after, before in pairs if after != before]
        if stale:
            print(f"{' and '.join(stale)}: results table out of date: run scripts/results_table.py")
            return 1
        return 0
    readme.write_text(new)
    readme_zh.write_text(new_zh)
    print(table(sorted((ROOT / "notebooks").glob("*.ipynb"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
