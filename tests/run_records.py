"""What a finished run left behind, read back for the tests: its VisualDL scalars and its train.log."""
import glob
import os

from visualdl import LogReader


def scalars_and_log(run_dir: str) -> tuple[dict, str]:
    """``{tag: [(step, value), ...]}`` of the run's one VisualDL record, and the text of its ``train.log``."""
    (path,) = glob.glob(os.path.join(run_dir, "vdl", "vdlrecords.*.log"))
    reader = LogReader(file_path=path)
    scalars = {tag: [(r.id, r.value) for r in reader.get_data("scalar", tag)] for tag in reader.get_tags()["scalar"]}
    with open(os.path.join(run_dir, "train.log"), encoding="utf-8") as f:
        return scalars, f.read()
