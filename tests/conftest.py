"""Shared pytest fixtures: where the read-only ground truth (../shared) lives.

Tests that need the real fixtures (dumps, OTA files, boot logs) are marked `fixtures`: automatically when
they use the `shared_dir`/`fixtures_dir`/`obk_images` fixtures, explicitly (or via NEEDS_FIXTURES below)
when they reach them another way. Without ../shared they are skipped with one summary line; under CI
(CI=true) a missing ../shared is an error, so CI always runs them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("BKBENCH_SHARED", Path(__file__).resolve().parent.parent.parent / "shared"))
FIXTURE_ARGS = {"shared_dir", "fixtures_dir", "obk_images"}
# Modules and tests that reach the fixtures without the fixtures above: module-level paths, snapshots drawn
# from the real dump, and tests whose byte counts or diagnoses come from the real dump / boot log the
# simulator loads by default (found by running the suite with BKBENCH_SHARED=/nonexistent).
NEEDS_FIXTURES = {
    "test_tui_snapshots", "test_tui_snapshots_more",
    "test_properties.py::test_recognize_mutated_real_images", "test_properties.py::test_read_vault_on_damaged_vault",
    "test_bad_input.py::test_unplug_mid_write", "test_doctor.py::test_scenario_api[wrong-baud]",
    "test_doctor.py::test_link_failure_prints_the_diagnosis",
}
SKIP_REASON = "needs the real fixtures"
# Tests that run real code under Unicorn (the Tuya T bootloader, OpenBK's config loader): everything under
# tests/realcode/ and the tests using these fixtures are marked `unicorn`.
UNICORN_ARGS = {"obk_fw"}
UNICORN_SKIP_REASON = "needs the unicorn module"


def _fixtures_present() -> bool:
    return (SHARED / "fixtures" / "dumps").is_dir()


def _unicorn_present() -> bool:
    return importlib.util.find_spec("unicorn") is not None


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fixtures: needs the real fixtures in ../shared/fixtures")
    config.addinivalue_line("markers", "unicorn: runs real firmware under the Unicorn emulator")
    if not _fixtures_present() and _ci():
        raise pytest.UsageError(
            f"CI needs the real fixtures, but {SHARED / 'fixtures'} does not exist: put the shared directory "
            "beside the clone (../shared) or set BKBENCH_SHARED")
    if not _unicorn_present() and _ci():
        raise pytest.UsageError("CI runs the real-code tests, but the unicorn module is missing: install the test "
                                "extra (pip install -e '.[test]')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    present = _fixtures_present()
    skip = pytest.mark.skip(reason=f"{SKIP_REASON} ({SHARED / 'fixtures'} not found)")
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else ""
        test_id = item.nodeid.rsplit("/", 1)[-1]
        listed = module in NEEDS_FIXTURES or any("::" in n and test_id.startswith(n) for n in NEEDS_FIXTURES)
        if FIXTURE_ARGS & set(getattr(item, "fixturenames", ())) or listed:
            item.add_marker("fixtures")
        if not present and item.get_closest_marker("fixtures"):
            item.add_marker(skip)
        in_realcode = "/realcode/" in str(getattr(item, "path", "")).replace("\\", "/")
        if in_realcode or UNICORN_ARGS & set(getattr(item, "fixturenames", ())):
            item.add_marker("unicorn")
        fixtures_skip = not present and item.get_closest_marker("fixtures")
        if item.get_closest_marker("unicorn") and not _unicorn_present() and not fixtures_skip:
            item.add_marker(pytest.mark.skip(reason=f"{UNICORN_SKIP_REASON} (pip install unicorn)"))


# Outcome counts a test hands over as a ("tally", {...}) user property (tests/test_desync.py): summed here, on
# the controller, because under xdist a module-level counter only ever sees its own worker's tests.
_tallies: list[tuple[str, dict]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        _tallies.extend((report.nodeid, v) for k, v in report.user_properties if k == "tally")


def _print_tallies(tr) -> None:
    classes = list(dict.fromkeys(c for _, t in _tallies for c, _ in t["counts"]))
    total = dict.fromkeys(classes, 0)
    tr.write_sep("-", "outcome tallies (runs per class)")
    for nodeid, t in sorted(_tallies):
        for c, n in t["counts"]:
            total[c] += n
        tr.write_line(f"{nodeid.rsplit('::', 1)[-1]}: runs={sum(n for _, n in t['counts'])} "
                      + " ".join(f"{c}={n}" for c, n in t["counts"])
                      + (f" (+{t['unreached']} faults on replies that never came)" if t.get("unreached") else "")
                      + f" in {t['seconds']} s")
    tr.write_line(f"total: runs={sum(total.values())} " + " ".join(f"{c}={n}" for c, n in total.items()), bold=True)
    for line in [line for _, t in sorted(_tallies) for line in t.get("failed", ())][:40]:
        tr.write_line("  " + line, yellow=True)
    for line in [line for _, t in sorted(_tallies) for line in t["bad"]][:40]:
        tr.write_line("  " + line, red=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _tallies:
        _print_tallies(terminalreporter)
    # Counted from the skip reports, not from the collection: under `-n 2` the workers collect and skip,
    # and only their reports reach the controller, which prints this summary.
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if SKIP_REASON in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} tests skipped: they need the real fixtures (dumps, OTA files, boot logs), not found "
            f"at {SHARED / 'fixtures'}; put ../shared beside the clone or set BKBENCH_SHARED=DIR to run them "
            "(CI requires them).", yellow=True, bold=True)
    unicorn = [r for r in terminalreporter.stats.get("skipped", []) if UNICORN_SKIP_REASON in str(r.longrepr)]
    if unicorn:
        terminalreporter.write_line(
            f"{len(unicorn)} tests skipped: they run real firmware under the Unicorn emulator, and the "
            "unicorn module is not installed (pip install -e '.[test]'; CI requires it).", yellow=True, bold=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def obk_images(fixtures_dir: Path) -> dict:
    """Per chip: the real OpenBK 1.18.219 OTA file, its plain app, and UA / QIO images built from it
    (core/images/builders.py) with the bootloader of a real dump of that chip."""
    from bkbench.core.images.builders import build_from_ota

    out = {}
    for chip, dump in (
        ("BK7231N", "bk7231n-lspa9-clone-bl0937-plug.bin"),
        ("BK7231T", "bk7231t-feit-br30-rgbw-bulb.bin"),
    ):
        ota = (fixtures_dir / "firmware" / f"OpenBeken-v1.18.219_{chip.lower()}.ug.bin").read_bytes()
        images = build_from_ota(ota, (fixtures_dir / "dumps" / dump).read_bytes(), chip)
        images["ota"] = ota
        out[chip] = images
    return out


@pytest.fixture(scope="session", params=["BK7231N", "BK7231T"])
def obk_fw(request, fixtures_dir: Path):
    """The real OpenBK 1.18.219 build of each chip, its config code ready to run (tests/realcode/openbk_fw.py)."""
    from realcode.openbk_fw import firmware

    return firmware(fixtures_dir / "firmware" / f"OpenBeken-v1.18.219_{request.param.lower()}.ug.bin", request.param)


ORIGINAL_HOME = str(Path.home())  # for tools that need the user's own settings (pip's index configuration)
# The user's own bkbench folders as the suite found them (the environment it was started with): no test may
# touch them. Every test runs with HOME and XDG_* pointing at its own temporary folders (so do the processes
# it starts: tmux, the CLI, serve), and each test is checked afterwards.
REAL_USER_DIRS = tuple(
    (Path(os.environ.get(var) or Path.home() / default) / "bkbench")
    for var, default in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"),
                         ("XDG_DATA_HOME", ".local/share"))
)


def _snapshot(dirs: tuple[Path, ...]) -> dict[str, tuple[int, int]]:
    out = {}
    for top in dirs:
        for root, _, files in os.walk(top):
            for name in [".", *files]:
                try:
                    st = os.stat(os.path.join(root, name))
                except OSError:
                    continue
                out[os.path.join(root, name)] = (st.st_mtime_ns, st.st_size)
    return out


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own home, config, data and cache dirs: nothing leaks between tests or into $HOME."""
    base = tmp_path_factory.mktemp("user")
    for var, sub in (("BKBENCH_CONFIG_DIR", "config"), ("BKBENCH_DATA_DIR", "data"), ("BKBENCH_CACHE_DIR", "cache"),
                     ("XDG_CONFIG_HOME", "xdg/config"), ("XDG_DATA_HOME", "xdg/data"), ("XDG_CACHE_HOME", "xdg/cache"),
                     ("XDG_STATE_HOME", "xdg/state"), ("HOME", "home")):
        (base / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(base / sub))
    before = _snapshot(REAL_USER_DIRS)
    yield
    after = _snapshot(REAL_USER_DIRS)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if changed:
        pytest.fail(f"this test wrote into the user's own bkbench folders: {', '.join(changed[:5])}", pytrace=False)
