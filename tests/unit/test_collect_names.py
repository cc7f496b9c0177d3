"""Names that become paths are checked where they enter (issue 21, point 3, collector side): CLI
arguments, `import` datasets, a run id read back from the store before `report` joins it, `nightly`,
and `pull` listings, which write only under their own host's directory and never replace a fetched
file whose content differs."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path, PurePosixPath

import duckdb
import pytest

from collect import errors, names, pull
from collect.cli import main
from collect.exchange import export_dataset
from collect.inventory import SshTarget
from collect.nightly import NightlyOptions, nightly
from collect.store import Store
from tests.results_tree import place_run, two_run_trees

pytestmark = pytest.mark.unit

HOSTILE = ["../../x", "/abs", "..", ".hidden", "r1\n", "a/b", "", "x" * 300, "r 1", "r1;rm"]


def test_the_name_patterns() -> None:
    for kind in names.PATTERNS:
        for bad in HOSTILE:
            assert not names.is_valid(kind, bad), (kind, bad)
    assert names.is_valid("run id", "20261201T030000Z") and names.is_valid("run id", "2026-11-01")
    assert names.is_valid("config id", "dlrm-entire-b256-cap300ms-a396733615")
    assert names.is_valid("host", "kunpeng-01.lab.example.com") and names.is_valid("instance", "numa0")
    with pytest.raises(errors.NameRefused, match=r"somewhere: run id '\.\./x' is not a valid name"):
        names.check("run id", "../x", "somewhere")


@pytest.mark.parametrize("bad", ["../../x", "/abs", "r1\n", ".."])
def test_a_run_argument_that_is_not_a_name_is_refused_in_one_line(tmp_path: Path, bad: str, capsys) -> None:
    db = two_run_trees(tmp_path)
    out = tmp_path / "deep" / "reports"
    argvs = [
        ["report", "--db", str(db), "--run", bad, "--out", str(out)],
        ["best", "--db", str(db), "--run", bad],
        ["twins", "--db", str(db), "--run", bad],
        ["regressions", "--db", str(db), "--run", bad],
        ["compare", "--db", str(db), "--against", bad],
        ["export", str(tmp_path / "x.csv"), "--db", str(db), "--run", bad],
        ["pull", "-i", str(tmp_path / "inv.yml"), "--run", bad, "--dest", str(tmp_path / "pulled")],
        ["nightly", "-i", str(tmp_path / "inv.yml"), "--run", bad, "--logs", str(tmp_path / "logs")],
    ]
    for argv in argvs:
        assert main(argv) == errors.EXIT_USAGE, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a valid name" in err, err
    assert not (tmp_path / "deep").exists() and not (tmp_path / "x").exists() and not (tmp_path / "logs").exists()


def test_report_refuses_a_run_id_from_the_store_that_cannot_be_a_directory(tmp_path: Path, capsys) -> None:
    db = two_run_trees(tmp_path)
    # A store filled by an earlier version (or an import before the check) holds a run id '..'.
    with duckdb.connect(str(db)) as conn:
        for table in ("instances", "points"):
            conn.execute(f"UPDATE {table} SET run_id = '..' WHERE run_id = '2026-11-02'")
    out = tmp_path / "reports" / "inner"
    assert main(["report", "--db", str(db), "--out", str(out)]) == errors.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run id '..' is not a valid name" in err, err
    assert not (tmp_path / "reports").exists()
    # the runs that are names still report
    assert main(["report", "--db", str(db), "--out", str(out), "--run", "2026-11-01"]) == 0
    assert (out / "2026-11-01" / "summary.md").is_file()


def test_import_refuses_a_dataset_whose_run_id_is_not_a_name_and_stores_nothing(tmp_path: Path, capsys) -> None:
    db = two_run_trees(tmp_path)
    share = tmp_path / "share"
    with Store(db) as store:
        export_dataset(store, share, ["2026-11-02"])
    for table in ("instances", "points"):
        (share / table / "run_id=2026-11-02").rename(share / table / "run_id=..")
    target = tmp_path / "target.duckdb"
    assert main(["import", str(share), "--db", str(target)]) == errors.EXIT_USAGE
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "run id '..' is not a valid name" in err and err.strip().endswith("nothing imported")
    ), err
    with Store.existing(target) as store:
        assert store.count("instances") == store.count("points") == 0


def test_nightly_checks_its_run_id_before_any_path_is_joined(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {hosts: {}}\n")
    logs = tmp_path / "a" / "b" / "logs"
    options = NightlyOptions(
        inventory=inventory,
        limit="all",
        results=tmp_path / "results",
        db=tmp_path / "db.duckdb",
        reports=tmp_path / "reports",
        logs=logs,
        lock=tmp_path / "lock",
        run_id="../../escape",
    )
    with pytest.raises(errors.NameRefused, match=r"nightly: run id '\.\./\.\./escape' is not a valid name"):
        nightly(options)
    assert not (tmp_path / "a").exists() and not (tmp_path / "escape").exists() and not (tmp_path / "lock").exists()


# --- pull ---------------------------------------------------------------------------------------------


class Entry:
    def __init__(self, name: str, path: Path | None, mode: int, size: int) -> None:
        self.filename, self.path, self.st_mode, self.st_size = name, path, mode, size


class FakeSftp:
    """SFTP over a local directory that stands for one host's results root, with extra entries a hostile
    host's listing may add (names no real directory can hold)."""

    def __init__(self, root: Path, remote_root: str, extra: dict[str, list[tuple[str, bytes]]]) -> None:
        self.root, self.remote_root, self.extra = root, PurePosixPath(remote_root), extra
        self.blobs: dict[str, bytes] = {}

    def __enter__(self) -> FakeSftp:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def get_channel(self) -> FakeSftp:
        return self

    def settimeout(self, timeout: float) -> None:
        pass

    def listdir_attr(self, remote: str) -> list[Entry]:
        local = self.root / PurePosixPath(remote).relative_to(self.remote_root)
        if not local.is_dir():
            raise FileNotFoundError(remote)
        entries = []
        for child in sorted(local.iterdir()):
            kind = stat.S_IFDIR if child.is_dir() else stat.S_IFREG
            entries.append(Entry(child.name, child, kind | 0o755, child.stat().st_size))
        for name, data in self.extra.get(remote, []):
            self.blobs[f"{remote}/{name}"] = data
            entries.append(Entry(name, None, stat.S_IFREG | 0o644, len(data)))
        return entries

    def get(self, remote: str, local: str) -> None:
        data = self.blobs.get(remote)
        if data is None:
            data = (self.root / PurePosixPath(remote).relative_to(self.remote_root)).read_bytes()
        Path(local).write_bytes(data)


class FakeClient:
    def __init__(self, sftp: FakeSftp) -> None:
        self.sftp = sftp

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def open_sftp(self) -> FakeSftp:
        return self.sftp


def test_pull_writes_only_under_its_own_host_and_never_replaces_a_file_whose_content_differs(
    tmp_path: Path, monkeypatch
) -> None:
    remote_root = "/opt/recbench/results"
    host_tree = tmp_path / "kp-01-remote"
    place_run(host_tree, "run1")  # kp-01's own results, and (hostile) files under kp-02's name
    shutil.rmtree(host_tree / "run1" / "kp-02" / "dlrm" / "dlrm-entire-b16-x" / "numa0")
    foreign = host_tree / "run1" / "kp-02" / "dlrm" / "cfg" / "numa0" / "perf.csv"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("forged by kp-01, longer than the real one\n")
    own = sorted(p for p in (host_tree / "run1" / "kp-01").rglob("*") if p.is_file())
    extra = {
        f"{remote_root}/run1/kp-01": [("../../evil.txt", b"out of the tree\n"), ("x\ny", b"newline\n")],
        f"{remote_root}/run1": [("/abs", b"absolute\n")],
    }
    sftp = FakeSftp(host_tree, remote_root, extra)
    monkeypatch.setattr(pull, "_connect", lambda target, timeout: FakeClient(sftp))
    known = tmp_path / "known_hosts"
    known.write_text("")
    target = SshTarget("kp-01", "127.0.0.1", 22, None, None, known)
    dest = tmp_path / "dest" / "results"
    fetched_before = dest / "run1" / "kp-02" / "dlrm" / "cfg" / "numa0" / "perf.csv"
    fetched_before.parent.mkdir(parents=True)
    fetched_before.write_text("kp-02's real file\n")

    report = pull.pull_host(target, remote_root, dest, retries=1)
    assert report.fetched == len(own) and report.already_here == 0
    assert fetched_before.read_text() == "kp-02's real file\n"  # another host's file is never written
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/abs").exists()
    written = {p.relative_to(dest).parts[:2] for p in dest.rglob("*") if p.is_file()}
    assert written == {("run1", "kp-01"), ("run1", "kp-02")}  # kp-02's only file is the one fetched before
    assert report.error and "outside its own directory <run>/kp-01/" in report.error
    assert "../../evil.txt" in report.error and "\n" not in report.error

    # Pulled again: same content is "already here" (by content, not size) ...
    sftp.extra = {}
    shutil.rmtree(host_tree / "run1" / "kp-02")
    again = pull.pull_host(target, remote_root, dest, retries=1)
    assert (again.fetched, again.already_here, again.error) == (0, len(own), None)
    # ... and a file of the same size with other content is never replaced: refused, named.
    victim = own[0]
    local = dest / victim.relative_to(host_tree)
    kept = local.read_bytes()
    victim.write_bytes(bytes(b ^ 1 for b in kept))
    assert victim.stat().st_size == local.stat().st_size
    changed = pull.pull_host(target, remote_root, dest, retries=1)
    assert local.read_bytes() == kept
    assert changed.error and str(local) in changed.error and "differ from the host's copy" in changed.error
    assert changed.already_here == len(own) - 1


def test_pull_refuses_a_host_whose_inventory_name_is_not_a_name(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    report = pull.pull_host(SshTarget("../kp", "127.0.0.1", 22, None, None, known), "/x", tmp_path / "d", retries=1)
    assert report.error and "host '../kp' is not a valid name" in report.error
    assert not (tmp_path / "d").exists()
