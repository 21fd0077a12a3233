"""``starbench export``: a protocol's task written out for code outside starbench.

``DIR/inputs/*.png`` are the inputs exactly as the protocol feeds them to a model (crop, resize);
``DIR/tasks.csv`` has one row per (input, target): ``input``, ``source_file`` (relative to the dataset
root), ``source`` and ``target`` (domain names, multi-label as ``+``-joined attributes), ``output`` (the
file name the translation must have) and ``edit`` (the task column); ``DIR/README.txt`` says how to
fill a translations folder, which ``starbench run protocol=NAME translations=[FOLDER]`` then scores.
The folder is written beside ``DIR`` and swapped into place (``report.results_folder``), so a failure
leaves nothing half-written.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from PIL import Image

from starbench.errors import StarbenchError
from starbench.evaluate.task import Task
from starbench.report import results_folder

TASKS_FILE = "tasks.csv"
TASK_FILE = "task.json"
COLUMNS = ("input", "source_file", "source", "target", "output", "edit")


def readme_text(task: Task, overrides: list[str]) -> str:
    settings = " ".join(overrides)
    return f"""starbench task: protocol {task.protocol}, {task.n} inputs, {len(task.cells())} translations to make.

inputs/ holds every input image as the protocol feeds it to a model: {task.size}x{task.size} RGB PNG,
already cropped and resized (the dataset file each came from is in tasks.csv, column source_file).

To score your model on this task:
1. For every row of tasks.csv, translate inputs/<input> from its domain(s) <source> to <target>
   (one-hot domains: one name; CelebA attributes: the attributes that are on, joined by '+';
   <edit> says which edit of the protocol the row belongs to).
2. Save the result as <output> in one folder of your own (for example my_model/): RGB, PNG (or JPEG
   with the same file stem), {task.size}x{task.size} pixels (other sizes are resized to it and the
   table says so). Every row needs its file.
3. Run, with the same settings as this export:
   starbench run protocol={task.protocol} {settings + ' ' if settings else ''}translations=[my_model] models=[]
   (drop models=[] to put the folder's row beside starbench's trained methods). The folder's name
   names its row in the tables.
"""


def export_task(task: Task, out: Path, overrides: list[str], config: dict[str, Any]) -> Path:
    """Write ``task`` into ``out`` (replacing an earlier export there; refusing any other non-empty folder)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / TASKS_FILE).is_file())):
        raise StarbenchError(f"export folder {out} exists and is not an earlier export (no {TASKS_FILE}); give an "
                             f"empty or new folder")
    with results_folder(out.parent, out.name) as tmp:
        (tmp / "inputs").mkdir()
        for i in range(task.n):
            Image.fromarray(task.inputs[i].permute(1, 2, 0).numpy()).save(tmp / "inputs" / task.input_name(i))
        with open(tmp / TASKS_FILE, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            sources = task.sources
            for i, t in task.cells():
                writer.writerow([task.input_name(i), task.source_file(i), task.label_names(sources[i]),
                                 task.label_names(task.targets[i, t]), task.output_name(i, t), task.columns[t]])
        (tmp / "README.txt").write_text(readme_text(task, overrides))
        (tmp / TASK_FILE).write_text(json.dumps({
            "protocol": task.protocol, "fingerprint": task.fingerprint(), "image_size": task.size,
            "inputs": task.n, "translations": len(task.cells()), "columns": task.columns,
            "domains": list(task.domains.names), "settings": overrides, "config": config}, indent=2) + "\n")
    return out
