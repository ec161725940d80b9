"""One rule for a dataset's short name, and output files written atomically."""

from pathlib import Path

import pytest

from igt.fileio import dataset_name


@pytest.mark.parametrize("given, expected", [
    ("mols.csv.gz", "mols"),
    ("mols.csv", "mols"),
    ("mols.tsv", "mols"),
    ("mols.TSV.GZ", "mols"),
    ("data/sub/mols.csv.gz", "mols"),
    ("/abs/path/My-Set.CSV", "My-Set"),
    ("bbbp", "bbbp"),
    ("hiv", "hiv"),
    ("BBBP", "BBBP"),
    ("spmotif-0.9", "spmotif-0.9"),
    ("spmotif-0.33", "spmotif-0.33"),
    ("ogbg-molhiv", "ogbg-molhiv"),
    ("dataset/ogbg_molhiv", "ogbg_molhiv"),
    ("dataset/ogbg_molhiv/", "ogbg_molhiv"),
])
def test_dataset_name(given, expected):
    assert dataset_name(given) == expected
    assert dataset_name(Path(given)) == expected


def test_every_place_names_a_dataset_the_same_way(tmp_path):
    from igt.config import RunConfig
    from igt.fileio import dataset_folder
    from igt.run import default_run_dir

    for given, expected in [("mols.csv.gz", "mols"), ("data/mols.tsv", "mols"), ("spmotif-0.9", "spmotif-0.9"),
                            ("bbbp", "bbbp")]:
        assert dataset_folder(given) == expected
        run = RunConfig()
        run.data.dataset = given
        assert default_run_dir(tmp_path, run).name.startswith(f"{expected}-")
    # the committed result folders keep their names
    for name in ["bace", "bbbp", "clintox", "esol", "freesolv", "hiv", "lipo", "spmotif-0.9", "spmotif-0.33"]:
        assert dataset_folder(name) == name


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_output_files_are_written_atomically_with_unchanged_bytes(tmp_path):
    import csv

    import yaml

    from igt.config import RunConfig
    from igt.results import RESULT_COLUMNS, write_results_csv

    run = RunConfig()
    run.save(tmp_path / "config.yaml")
    assert (tmp_path / "config.yaml").read_bytes() == yaml.safe_dump(run.to_dict(), sort_keys=False).encode()

    rows = [{"dataset": "bbbp", "seed": 0, "test": 0.75}, {"dataset": "mols", "seed": 1, "test": None}]
    write_results_csv(rows, tmp_path / "results.csv")
    with open(tmp_path / "expected.csv", "w", newline="") as handle:  # the former plain writer
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in RESULT_COLUMNS})
    assert (tmp_path / "results.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
    assert b"\r\n" in (tmp_path / "results.csv").read_bytes()  # csv's row ends survive
    _no_temp_files(tmp_path)


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    from igt.fileio import atomic_open, atomic_write_text

    target = tmp_path / "rationale.csv"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target, newline="") as handle:
            handle.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    _no_temp_files(tmp_path)


def test_figures_are_saved_atomically_in_the_format_of_their_suffix(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from igt.fileio import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, svg = save_figure(fig, tmp_path / "f.png"), save_figure(fig, tmp_path / "f.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:500]

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError):
        save_figure(fig, png)
    plt.close(fig)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the old picture survives a failed save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]  # no temporary file left
