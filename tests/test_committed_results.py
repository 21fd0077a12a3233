"""The committed results are what the code renders: `starbench tables` rewrites each committed folder (results/ and
results/seeds/) from its run record byte for byte, so a table in the repository never drifts from its record."""
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from starbench.cli import cli

RESULTS = Path(__file__).resolve().parent.parent / "results"
FOLDERS = sorted(p.parent for p in RESULTS.glob("**/record.json"))


@pytest.mark.parametrize("folder", FOLDERS, ids=[str(p.relative_to(RESULTS)) for p in FOLDERS])
def test_committed_folder_rerenders_byte_for_byte(tmp_path, folder):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    for f in copy.iterdir():  # every rendered file is written anew, not left in place
        if f.suffix in (".csv", ".md", ".tex", ".png"):
            f.unlink()
    res = CliRunner().invoke(cli, ["tables", f"protocol={folder.name}", f"results_dir={tmp_path}"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in folder.iterdir())
    changed = [p.name for p in folder.iterdir() if p.is_file() and (copy / p.name).read_bytes() != p.read_bytes()]
    assert not changed, f"re-rendered differently: {changed}"
