"""`desktopmate models list | download [stt|vad|face|all] | import PATH`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from server.config import Settings
from server.models.download import DownloadError
from server.models.importer import ImportProblem, import_models
from server.models.manager import install, list_states
from server.models.registry import KINDS, ModelFile


def add_models_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="list, download or import model files")
    msub = models.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="what is present, what is missing, and where")
    dl = msub.add_parser("download", help="download into MODELS_DIR (resumable, verified)")
    dl.add_argument("which", nargs="?", default="all", choices=[*KINDS, "all"])
    imp = msub.add_parser("import", help="install an offline copy (folder, .zip or .tar.gz)")
    imp.add_argument("path", type=Path)


def run_models_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.models_command == "list":
        return _list(settings)
    if args.models_command == "download":
        return _download(settings, list(KINDS) if args.which == "all" else [args.which])
    return _import(settings, args.path)


def _list(settings: Settings) -> int:
    print(f"models folder: {settings.models_root}")
    missing = 0
    for state in list_states(settings):
        if state.present:
            print(f"  {state.kind:5} present  {state.path}  ({state.source})")
        else:
            missing += 1
            print(f"  {state.kind:5} MISSING  {state.problem}")
            print(f"        fix: {state.fix}")
    return 1 if missing else 0


class _Bar:
    """A tqdm bar per file: bytes, rate and ETA."""

    def __init__(self) -> None:
        self.bar: Any = None

    def file(self, f: ModelFile) -> None:
        from tqdm import tqdm

        self.close()
        self.bar = tqdm(
            total=f.size, unit="B", unit_scale=True, unit_divisor=1024, desc=f.name, leave=True
        )

    def progress(self, done: int, total: int | None) -> None:
        if self.bar is None:
            return
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _download(settings: Settings, kinds: list[str]) -> int:
    failed = 0
    for kind in kinds:
        bar = _Bar()
        try:
            path = install(settings, kind, progress=bar.progress, on_file=bar.file)
        except DownloadError as e:
            bar.close()
            failed += 1
            print(f"{kind}: download failed: {e}", file=sys.stderr)
            if e.offline:
                print(
                    f"{kind}: offline? copy the models from a connected machine and run "
                    "`desktopmate models import PATH`",
                    file=sys.stderr,
                )
            continue
        bar.close()
        print(f"{kind}: installed at {path}")
    return 1 if failed else 0


def _import(settings: Settings, path: Path) -> int:
    try:
        done = import_models(settings, path)
    except ImportProblem as e:
        print(f"import failed: {e}", file=sys.stderr)
        return 1
    for item in done:
        print(f"{item.kind}: {item.title} installed at {item.path}")
    return 0
