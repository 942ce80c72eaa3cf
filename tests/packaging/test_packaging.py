"""Cheap checks of the desktop packaging (no PyInstaller build: that takes tens of minutes and
lives in packaging/build.sh). The spec and the launcher must point at files that exist, and a
frozen build must start its worker through its own executable."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in .desktop files
    parser.read(PACKAGING / "compression-workbench.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


def test_spec_references_existing_files() -> None:
    spec = (PACKAGING / "workbench.spec").read_text(encoding="utf-8")
    compile(spec, "workbench.spec", "exec")  # valid Python, as PyInstaller will exec it
    script = re.search(r'ROOT / "packaging" / "(\w+\.py)"', spec)
    assert script is not None and (PACKAGING / script.group(1)).is_file()
    resource_dirs = re.findall(r'ROOT / "resources" / "(\w+)"', spec)
    assert set(resource_dirs) == {"datasets", "recipes", "icons"}
    for name in resource_dirs:
        folder = ROOT / "resources" / name
        assert folder.is_dir() and any(folder.iterdir()), folder
    # The packaged default model ships as data of the package the spec collects.
    from core.models import PACKAGED_MODELS

    packages = {package for package, _ in PACKAGED_MODELS.values()}
    assert all(f'"{package}"' in spec for package in packages)
    # The executable is named as the .desktop file and the pip entry point call it.
    assert re.search(r'EXE\([\s\S]*name="workbench"', spec)


def test_launch_script_dispatches_through_the_gui_entry_point() -> None:
    source = (PACKAGING / "launch.py").read_text(encoding="utf-8")
    assert "from workbench.app import main" in source and "freeze_support()" in source


def test_desktop_file_runs_the_gui_entry_point_and_has_an_icon() -> None:
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib on Python 3.10
    table = re.search(r"^\[project\.gui-scripts\]\n((?:[\w-]+ = .*\n)+)", pyproject, re.M)
    assert table is not None
    scripts = {line.split(" = ")[0] for line in table.group(1).splitlines()}
    assert entry["Exec"].split()[0] in scripts
    assert entry["TryExec"] == entry["Exec"].split()[0]
    # install-desktop.sh installs resources/icons/workbench.svg under the Icon name.
    installer = (PACKAGING / "install-desktop.sh").read_text(encoding="utf-8")
    assert f"apps/{entry['Icon']}.svg" in installer
    source = re.search(r'"\$ROOT/(resources/icons/[\w-]+\.svg)"', installer)
    assert source is not None
    icon = ROOT / source.group(1)
    assert ET.parse(icon).getroot().tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_file_validates() -> None:
    result = subprocess.run(["desktop-file-validate", str(PACKAGING / "compression-workbench.desktop")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_worker_command_reruns_the_frozen_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.run import session

    assert session.worker_command() == [sys.executable, "-u", "-m", "core.run.worker"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/workbench/workbench")
    assert session.worker_command() == ["/opt/workbench/workbench", "--worker"]


def test_the_window_and_the_cli_start_the_one_worker_command(qapp, qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.protocol import RunRequest
    from core.run import process, session
    from workbench.worker_client import WorkerClient

    monkeypatch.setattr(session, "worker_command", lambda: ["/opt/no-such-bundle/workbench", "--worker"])
    assert "/opt/no-such-bundle/workbench" in process.run_worker(RunRequest()).message()
    client = WorkerClient()
    with qtbot.waitSignal(client.finished, timeout=10_000) as ended:
        client.start(RunRequest())
    assert ended.args[0].status == "not_started" and "/opt/no-such-bundle/workbench" in ended.args[0].message()


def test_worker_flag_runs_core_worker_main_without_qt(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.run.worker
    from workbench import app

    calls: list[str] = []
    monkeypatch.setattr(core.run.worker, "main", lambda: calls.append("worker") or 3)
    assert app.main(["workbench", "--worker"]) == 3
    assert calls == ["worker"]


def test_smoke_flag_constructs_the_window_and_returns_zero(qapp, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench import app

    assert app.main(["workbench", "--smoke"]) == 0
    assert "smoke: constructed" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command_with_the_deploy_extra() -> None:
    """.ci/run is the README's test command; both install the deploy extra the backend tests need."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert command in readme
    assert '-e ".[test,deploy]"' in command
    install = next(line for line in readme.splitlines() if line.startswith("python3 -m venv") and "workbench" in line)
    assert '-e ".[deploy]"' in install
