"""The ``starbench`` command: run, data, list (and, as they land, train, translate, tables).

Every command takes ``key=value`` overrides resolved by ``starbench.config`` (defaults < scale
preset < overrides). A ``StarbenchError`` is printed without a traceback and exits with code 2;
``--debug`` shows the traceback.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click
from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from starbench import __version__
from starbench.config import model_section, parse_overrides, resolve, to_yaml
from starbench.data import decode_check, load_index, synth
from starbench.errors import StarbenchError
from starbench.evaluate.compare import compare_folders
from starbench.evaluate.export import export_task
from starbench.evaluate.parallel import side_by_side
from starbench.evaluate.plan import plan
from starbench.files import FULL_ERRNOS, write_text
from starbench.progress import progress_bar
from starbench.registry import DATASETS, FORMATS, MODELS, PROTOCOLS
from starbench.report import RECORD_FILE, rerender
from starbench.train.trainer import Trainer
from starbench.translate import translate_files

out = Console()
err = Console(stderr=True)
OVERRIDES = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")


class StarbenchGroup(click.Group):
    """Turns StarbenchError (and a full disk anywhere) into a one-line message and exit code 2 (traceback with
    --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (StarbenchError, OSError) as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            if isinstance(exc, OSError):
                if exc.errno not in FULL_ERRNOS:
                    raise
                exc = StarbenchError(f"no space left on {Path(exc.filename).parent if exc.filename else 'the disk'}"
                                     f" ({exc.strerror}); free some space and run the command again")
            err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
            sys.exit(StarbenchError.exit_code)


@click.group(cls=StarbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="starbench")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """starbench: train and evaluate multi-domain image-to-image translation (StarGAN and baselines).

    Settings are KEY=VALUE pairs, for example `scale=smoke data.root=/data/RaFD`.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# ----------------------------------------------------------------------------------------- list
@cli.command("list", context_settings={"ignore_unknown_options": True})
@OVERRIDES
def list_cmd(overrides: tuple[str, ...]) -> None:
    """Registered models (with their options), protocols, datasets and weight formats: [model=NAME].

    model=NAME (a registered name or package.module:Class) lists that model's options: key, type, default, the
    value each scale preset gives, and what it is.
    """
    opts = simple_options(overrides, {"model": str})
    if "model" in opts:
        section = model_section(opts["model"])
        table = Table(title=f"options of model {opts['model']}" + (f" (set as {section.name}.<option>=VALUE)"
                                                                    if section.name else ""), title_justify="left")
        for column in ("key", "type", "default", "smoke", "demo", "paper", "meaning"):
            table.add_column(column, style="bold cyan" if column == "key" else None, no_wrap=column != "meaning")
        for row in option_rows(section):
            table.add_row(*row)
        if section.options is None:
            table.add_row("-", "", "", "", "", "", "this model has no options")
        out.print(table)
        if section.steps:
            budgets = ", ".join(f"{where} {n:,}" for where, n in section.steps.items())
            out.print(f"training steps (train.model_steps.{section.name}=N): {budgets}; else train.steps",
                      highlight=False)
        if section.decay_from:
            shares = ", ".join(f"{where} {x:g}" for where, x in section.decay_from.items())
            out.print(f"learning rate falls linearly to 0 after this share of the steps (train.model_decay_from."
                      f"{section.name}=X; 1: constant): {shares}; else train.decay_from", highlight=False)
        if section.batch_size:
            sizes = ", ".join(f"{where} {n}" for where, n in section.batch_size.items())
            out.print(f"batch size (train.model_batch_size.{section.name}=N): {sizes}; else data.batch_size",
                      highlight=False)
        return
    for title, registry in (("models", MODELS), ("protocols", PROTOCOLS), ("datasets", DATASETS),
                            ("weight formats", FORMATS)):
        table = Table(title=title, title_justify="left", show_lines=False)
        table.add_column("name", style="bold cyan")
        table.add_column("description")
        if registry is MODELS:
            table.add_column("options (defaults; `starbench list model=NAME` for all)")
        entries = list(registry)
        for entry in entries:
            extra = [options_summary(model_section(entry.name))] if registry is MODELS else []
            table.add_row(entry.name, entry.description, *extra)
        if not entries:
            table.add_row("-", "none registered yet")
        out.print(table)


def option_rows(section: Any) -> list[tuple[str, ...]]:
    """(key, type, default, smoke, demo, paper, meaning) per option of a model's options dataclass; the meaning is
    the comment on the option's line in the model's file (or the class docstring's first line)."""
    if section.options is None:
        return []
    comments = option_comments(section.options)
    rows = []
    for f in dataclasses.fields(section.options):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        per_scale = [str(section.presets.get(scale, {}).get(f.name, "")) for scale in ("smoke", "demo", "paper")]
        kind = getattr(f.type, "__name__", str(f.type)).replace("typing.", "")
        rows.append((f"{section.name}.{f.name}", kind, str(default), *per_scale, comments.get(f.name, "")))
    return rows


def option_comments(options: type) -> dict[str, str]:
    """{option: the '# ...' comment on its line} from the source of an options dataclass."""
    try:
        source = inspect.getsource(options)
    except (OSError, TypeError):
        return {}
    out = {}
    for line in source.splitlines():
        match = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
        if match:
            out[match.group(1)] = match.group(2).strip()
    return out


def options_summary(section: Any) -> str:
    if section.options is None:
        return "-"
    fields = dataclasses.fields(section.options)
    shown = ", ".join(f"{f.name}={f.default}" for f in fields[:4] if f.default is not dataclasses.MISSING)
    return shown + (f", ... ({len(fields)} in all)" if len(fields) > 4 else "")


# ----------------------------------------------------------------------------------------- run
@cli.command("run", context_settings={"ignore_unknown_options": True})
@OVERRIDES
@click.option("--dry-run", is_flag=True, help="Print the resolved config and what would run, then stop.")
def run_cmd(overrides: tuple[str, ...], dry_run: bool) -> None:
    """Run an evaluation protocol: starbench run protocol=NAME [KEY=VALUE]..."""
    cfg = resolve(overrides)
    if not cfg.protocol:
        if dry_run:
            out.print(to_yaml(cfg), markup=False, highlight=False)
        raise StarbenchError(f"which protocol? give protocol=NAME; available: {', '.join(PROTOCOLS.names()) or 'none'}")
    protocol = PROTOCOLS.get(cfg.protocol)
    if dry_run:
        out.print(to_yaml(cfg), markup=False, highlight=False)
        out.print(f"would run protocol '{cfg.protocol}' ({protocol.__module__}) at scale {cfg.scale}, "
                  f"writing to {Path(cfg.results_dir) / cfg.protocol}", markup=False)
        return
    with side_by_side(cfg, protocol):
        protocol(cfg)


# ----------------------------------------------------------------------------------------- export
@cli.command("export", context_settings={"ignore_unknown_options": True})
@OVERRIDES
def export_cmd(overrides: tuple[str, ...]) -> None:
    """Write a protocol's task for code outside starbench: protocol=NAME out=DIR [KEY=VALUE]...

    DIR/inputs/*.png (the inputs as the protocol feeds them to a model), DIR/tasks.csv (per input and
    target: source and target domains and the file name the translation must have) and DIR/README.txt.
    Score a folder of such translations with `starbench run protocol=NAME translations=[FOLDER]`.
    """
    out_dir = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == "out"]
    rest = [o for o in overrides if o.split("=", 1)[0] != "out"]
    if not out_dir or not out_dir[-1]:
        raise StarbenchError("missing out=DIR: the folder to write the task into")
    cfg = resolve(rest)
    if not cfg.protocol:
        raise StarbenchError(f"which protocol? give protocol=NAME; available: {', '.join(PROTOCOLS.names())}")
    build = getattr(PROTOCOLS.get(cfg.protocol), "task", None)
    if build is None:
        raise StarbenchError(f"protocol '{cfg.protocol}' translates nothing, so it has no task to export")
    task = build(cfg)
    settings = [o for o in rest if o.split("=", 1)[0] != "protocol"]
    folder = export_task(task, Path(out_dir[-1]), settings, OmegaConf.to_container(cfg, resolve=True))
    out.print(f"wrote {task.n} inputs and {len(task.cells())} rows of tasks.csv to {folder}; "
              f"see {folder / 'README.txt'}",
              highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------------------- plan
@cli.command("plan", context_settings={"ignore_unknown_options": True})
@OVERRIDES
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one shell command per line; json: a list of jobs for schedulers.")
def plan_cmd(overrides: tuple[str, ...], fmt: str) -> None:
    """The training jobs of a protocol run, for clusters: protocol=NAME [KEY=VALUE]...

    Prints one `starbench train ...` per (method, seed) the protocol would train, each into the run folder
    the protocol will look in, then the `starbench run ...` that only evaluates once they are done. The
    train lines are independent (a SLURM array, several GPUs, or one after another; concurrently too).
    """
    jobs = plan(list(overrides))
    trains = [j for j in jobs if j["kind"] == "train"]
    if not trains:
        err.print("this protocol run trains nothing: only its run line follows", highlight=False)
    if fmt == "json":
        click.echo(json.dumps(jobs, indent=2))
    else:
        for job in jobs:
            click.echo(job["command"])
    if trains:
        err.print(f"{len(trains)} training job(s), then 1 run line", highlight=False)


# ----------------------------------------------------------------------------------------- train
def default_train_dir(cfg: Any, overrides: tuple[str, ...]) -> Path:
    """An explicit run_dir=DIR is the run folder; otherwise runs/<model>-<data>-<scale>."""
    if any(o.split("=", 1)[0] == "run_dir" for o in overrides):
        return Path(cfg.run_dir)
    model = str(cfg.model).replace(":", "_").replace("/", "_")
    return Path(cfg.run_dir) / f"{model}-{cfg.data.name}-{cfg.scale}"


@cli.command("train", context_settings={"ignore_unknown_options": True})
@OVERRIDES
@click.option("--dry-run", is_flag=True, help="Print the resolved config and the run folder, then stop.")
def train_cmd(overrides: tuple[str, ...], dry_run: bool) -> None:
    """Train a model: starbench train model=stargan data=rafd|celeba|joint|folder [KEY=VALUE]...

    Resumes automatically when the run folder holds a checkpoint (train.resume=false starts over).
    Ctrl-C saves a checkpoint and stops; run the same command again to continue.
    """
    cfg = resolve(overrides)
    run_dir = default_train_dir(cfg, overrides)
    if dry_run:
        out.print(to_yaml(cfg), markup=False, highlight=False)
        out.print(f"would train model '{cfg.model}' on data '{cfg.data.name}' into {run_dir}", markup=False)
        return
    result = Trainer(cfg, run_dir).fit()
    if result.reused:
        out.print(f"{run_dir} already holds a finished run of {cfg.model} ({result.step} steps): nothing to train; "
                  f"checkpoint {result.checkpoint}", highlight=False, soft_wrap=True)
        return
    if result.interrupted:
        err.print(f"interrupted at step {result.step}/{result.total_steps}; checkpoint saved to {result.checkpoint}. "
                  f"Run the same command again to continue.", highlight=False)
        sys.exit(130)
    out.print(f"trained {cfg.model} for {result.step} steps in {result.seconds:.1f} s; checkpoint "
              f"{result.checkpoint}, losses {run_dir / 'losses.jsonl'}, samples {run_dir / 'samples'}",
              highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------------------- translate
@cli.command("translate", context_settings={"ignore_unknown_options": True})
@OVERRIDES
def translate_cmd(overrides: tuple[str, ...]) -> None:
    """Translate images: checkpoint=PATH input=FILE_OR_DIR target=NAME[,NAME...] out=DIR [source=NAME device=cpu].

    One-hot domains (RaFD, folders): one output per target name. CelebA attributes: the names
    together form one target (those attributes on, the rest off). checkpoint= is a starbench
    checkpoint.pt or a public StarGAN generator (200000-G.ckpt); for the latter, domains=[a,b,...]
    names the labels when there are neither 5 (CelebA) nor 8 (RaFD), and image_size=N (default 128)
    sets the network input side.
    """
    opts = simple_options(overrides, {"checkpoint": str, "input": str, "target": str, "out": str, "source": str,
                                      "device": str, "batch": int, "domains": str, "image_size": int},
                          required=("checkpoint", "input", "target", "out"))
    names = name_list(opts["target"])
    source = name_list(opts.get("source", ""))
    written = translate_files(opts["checkpoint"], opts["input"], names, opts["out"], source,
                              opts.get("device", "cpu"), opts.get("batch", 16), name_list(opts.get("domains", "")),
                              opts.get("image_size"))
    out.print(f"wrote {len(written)} image(s) to {opts['out']}", highlight=False)


def name_list(text: str) -> list[str]:
    """'a,b' or '[a,b]' -> ['a', 'b']."""
    return [t.strip() for t in text.strip().strip("[]").split(",") if t.strip()]


def simple_options(overrides: tuple[str, ...], allowed: dict[str, type], required: tuple[str, ...] = (),
                   defaults: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """KEY=VALUE options of a command that does not take the full config (synth, translate)."""
    opts: dict[str, Any] = dict(defaults or {})
    for item in parse_overrides(overrides):
        key, value = item.split("=", 1)
        if key not in allowed:
            raise StarbenchError(f"unknown key '{key}'; valid keys: {', '.join(allowed)}")
        try:
            opts[key] = allowed[key](value)
        except ValueError:
            raise StarbenchError(f"key '{key}': '{value}' is not a valid {allowed[key].__name__}") from None
    missing = [k for k in required if k not in opts]
    if missing:
        raise StarbenchError(f"missing {', '.join(k + '=...' for k in missing)}")
    return opts


# ----------------------------------------------------------------------------------------- tables
@cli.command("tables", context_settings={"ignore_unknown_options": True})
@OVERRIDES
def tables_cmd(overrides: tuple[str, ...]) -> None:
    """Regenerate tables and figures in results/ from the stored run records: [protocol=NAME] [results_dir=DIR].

    Nothing is trained or translated: each protocol folder's record.json is rendered again.
    """
    cfg = resolve(overrides)
    names = [cfg.protocol] if cfg.protocol else [e.name for e in PROTOCOLS]
    done = 0
    for name in names:
        protocol = PROTOCOLS.get(name)
        render = getattr(protocol, "render", None)
        folder = Path(cfg.results_dir) / name
        if render is None or (not cfg.protocol and not (folder / RECORD_FILE).is_file()):
            continue
        rerender(cfg.results_dir, name, render)
        out.print(f"regenerated {folder}", highlight=False)
        done += 1
    if not done:
        raise StarbenchError(f"no run records found under {cfg.results_dir}/ (run a protocol first)")


# ----------------------------------------------------------------------------------------- compare
@cli.command("compare", context_settings={"ignore_unknown_options": True})
@OVERRIDES
def compare_cmd(overrides: tuple[str, ...]) -> None:
    """Does a rerun reproduce a results folder? committed=DIR new=DIR [seed_study=DIR] [out=FILE].

    Compares two folders a protocol wrote (the committed one, and yours from the same command): the file sets,
    each error against the other folder's stated 95% interval, the other numbers side by side, every CSV cell by
    cell; two seed studies also get a test of their means per method; seed_study=DIR (a seed study of the same
    protocol) adds each single run against the interval one more training run falls in. Prints a Markdown report
    (and writes it to out=FILE). Exit status: 0 when every check holds, 1 when some fail (all listed), 2 when a
    folder cannot be read.
    """
    opts = simple_options(overrides, {"committed": Path, "new": Path, "seed_study": Path, "out": Path},
                          required=("committed", "new"))
    result = compare_folders(opts["committed"], opts["new"], opts.get("seed_study"))
    if "out" in opts:
        write_text(opts["out"], result.report)
    out.print(result.report, markup=False, highlight=False, soft_wrap=True)
    if result.problems:
        sys.exit(1)


# ----------------------------------------------------------------------------------------- data
@cli.group("data")
def data_group() -> None:
    """Synthetic data and checks of dataset folders."""


@data_group.command("synth", context_settings={"ignore_unknown_options": True})
@OVERRIDES
def synth_cmd(overrides: tuple[str, ...]) -> None:
    """Write the synthetic face set: out=DIR [subjects=67 seed=0 size=256 celeba=2000 layout=raw|split].

    Writes DIR/RaFD (RaFD file names, or train|test/<expression>/ with layout=split) and
    DIR/CelebA (img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt). celeba=0 skips it.
    """
    opts = simple_options(overrides, {"out": str, "subjects": int, "seed": int, "size": int, "celeba": int,
                                      "layout": str}, required=("out",),
                          defaults={"subjects": 67, "seed": 0, "size": 256, "celeba": 2000, "layout": "raw"})
    root = Path(opts["out"])

    def tick(advance: Callable[[int], None]) -> Callable[[int, int], None]:
        return lambda done, total: advance(1)

    with progress_bar("synthetic RaFD", opts["subjects"] * 72) as advance:
        synth.write_rafd(root / "RaFD", opts["subjects"], opts["seed"], opts["size"], opts["layout"],
                         progress=tick(advance))
    if opts["celeba"] > 0:
        with progress_bar("synthetic CelebA", opts["celeba"]) as advance:
            synth.write_celeba(root / "CelebA", opts["celeba"], opts["seed"], progress=tick(advance))
    out.print(f"wrote {root / 'RaFD'}" + (f" and {root / 'CelebA'}" if opts["celeba"] > 0 else ""))


@data_group.command("info", context_settings={"ignore_unknown_options": True})
@OVERRIDES
def info_cmd(overrides: tuple[str, ...]) -> None:
    """What a loader finds: data=rafd|celeba|folder [data.root=DIR].

    Images per domain and split, the label layout, and every file it could not use, with the reason: a
    file it cannot list (name, attribute line) or cannot decode (every listed image is decoded into the
    cache at data.image_size, as a run would). Exit status: 0 when every file is usable, 1 when some are
    not (all listed), 2 when the data cannot be read at all (missing folder, unreadable attribute file).
    """
    cfg = resolve(overrides)
    index = load_index(cfg, strict=False)
    undecodable, converted = decode_check(cfg, index)
    out.print(f"[bold]{index.name}[/] at {index.root}  (layout: {index.layout})", highlight=False, soft_wrap=True)
    out.print(f"labels: {index.domains.describe()}", highlight=False)
    counts = index.counts()
    table = Table(title="images per domain and split", title_justify="left")
    table.add_column("domain", style="bold")
    splits = index.splits()
    for split in splits:
        table.add_column(split, justify="right")
    for name in index.domains.names:
        table.add_row(name, *(str(counts[s][name]) for s in splits))
    table.add_row("[italic]images[/]", *(str(len(index.indices(s))) for s in splits))
    out.print(table)
    for note in index.notes + [f"decoding: {note}" for note in converted]:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
    problems = [str(p) for p in index.problems] + undecodable
    if problems:
        out.print(f"[bold yellow]{len(problems)} file(s) could not be used:[/]")
        for p in problems:
            out.print(f"  {p}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    out.print("[green]every file was usable[/]")


def main() -> None:
    cli(prog_name="starbench")


if __name__ == "__main__":
    main()
