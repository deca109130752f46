"""Which files a run reads and writes: inputs expanded (files, folders, globs), each mapped to its output,
every output checked before anything is written (never an input, never a user's file), and the manifest
of what the tool wrote into an output folder that lies inside an input folder."""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.formats import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass(frozen=True)
class OutputRules:
    """How results are named and what may be replaced. trajectory: NAME.trajectory.png is written too;
    skip_existing: jobs whose result exists are left out (an interrupted run goes on); overwrite: False
    refuses a run whose results exist; suffix: added to every result's name in an output folder."""

    trajectory: bool = False
    skip_existing: bool = False
    overwrite: bool = True
    suffix: str = ""


def plan_outputs(inputs: list[str], output: str, rules: OutputRules = OutputRules()) -> list[Job]:
    """Expand files, folders (recursive) and globs, and map each to its output path (restore, degrade).

    One plain file and an output with an image suffix: file to file. An output that ends in / or is a
    folder, or several inputs: `output` is a folder and every result keeps its name relative to the
    folder or glob it came from (plus `rules.suffix`). One file and any other output is refused, in one
    sentence. A file reached by several paths (symlinks) is restored once. Refused, before anything is
    written: any output (with the trajectory, also NAME.trajectory.png) that is an input, that two inputs
    would both write, or that already exists in an output folder lying inside an input folder (it may be
    the user's own), unless that folder's manifest (OUTPUTS, `record_outputs`) shows the tool wrote it,
    unchanged since; with `rules.overwrite` off, any output that exists.
    """
    out = Path(output)
    if out.is_file() and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise LmppmError(f"-o {output} is an existing file that is not an image; give an image name or a folder.")
    same = any(Path(item).is_dir() and Path(item).resolve() == out.resolve() for item in inputs)
    if same and not rules.suffix:
        raise LmppmError(
            f"-o {output} is one of the inputs: the results would overwrite the originals (--suffix writes beside them)."
        )
    found, real = _sources(inputs, out, rules.suffix if same else "")
    folder = out.is_dir() or output.endswith(("/", os.sep)) or not (len(inputs) == 1 and Path(inputs[0]).is_file())
    if not folder and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise LmppmError(
            f"-o {output} is not an image file name (.png, .jpg, .tif, ...): name the result, e.g. "
            f"{out.with_suffix(found[0][0].suffix or '.png')}, or end -o with / to write it into a folder."
        )
    if folder and out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir() and len(found) > 1:
        raise LmppmError(f"-o {output} names one file but the inputs hold {len(found)} images; give a folder.")
    if folder:
        jobs = [Job(src, out / rel.with_name(rel.stem + rules.suffix + rel.suffix)) for src, rel in found]
    else:
        jobs = [Job(found[0][0], out)]
    if rules.skip_existing:
        jobs = [j for j in jobs if not all(p.exists() for p in written_paths(j, rules.trajectory))]
    _check_targets(jobs, real, rules.trajectory, output)
    existing = [p for j in jobs for p in written_paths(j, rules.trajectory) if p.exists()]
    if existing and not rules.overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise LmppmError(f"{existing[0]}{more} already exist(s); --no-overwrite leaves them (nothing was written).")
    return jobs


def _sources(inputs: list[str], out: Path, beside: str = "") -> tuple[list[tuple[Path, Path]], dict[Path, str]]:
    """([(source, name relative to its root)], {source: real path}) of every input, each file once,
    leaving out what lies in the output folder (earlier results are not restored again); with `beside`
    (the results' suffix, written into an input folder), leaving out the files named with it instead."""
    found: list[tuple[Path, Path]] = []
    real: dict[Path, str] = {}  # each source's real path, found once (docs/speed.md)
    out_dir = os.path.join(os.path.realpath(out), "") if out.is_dir() and not beside else None
    seen: set[str] = set()
    for item in inputs:
        for src, rel in _expand(item):
            real[src] = os.path.realpath(src)
            if real[src] in seen:
                continue
            seen.add(real[src])
            earlier = out_dir is not None and real[src].startswith(out_dir)
            if not earlier and not (beside and src.stem.endswith(beside)):
                found.append((src, rel))
    if not found:
        raise LmppmError("the inputs hold no images outside the output folder.")
    return found, real


def existing_results(jobs: list[Job], trajectory: bool = False) -> int:
    """How many of the jobs' results exist already (and will be replaced)."""
    return sum(p.exists() for j in jobs for p in written_paths(j, trajectory))


OUTPUTS = ".lmppm-outputs.json"  # in an output folder inside an input folder: the results the tool wrote there


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(folder: Path) -> dict[str, str]:
    """{name relative to the folder: SHA-256} of the results written there by earlier runs."""
    try:
        found = json.loads((folder / OUTPUTS).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def record_outputs(inputs: list[str], output: str, written: list[Path]) -> None:
    """When the output folder lies inside an input folder, add what this run wrote to its manifest, so
    that the same command run again may replace those files (and only those)."""
    out = Path(output).resolve()
    if not out.is_dir() or not any(Path(i).is_dir() and out.is_relative_to(Path(i).resolve()) for i in inputs):
        return
    manifest = _manifest(out)
    for path in written:
        path = Path(path).resolve()
        if path.is_file() and path.is_relative_to(out):
            manifest[path.relative_to(out).as_posix()] = _digest(path)
    write_text(out / OUTPUTS, json.dumps(manifest, indent=1, sort_keys=True))


def _ours(path: Path, out: Path, manifest: dict[str, str]) -> bool:
    """Whether `path`, in the output folder `out`, is a result an earlier run wrote, unchanged since."""
    try:
        name = Path(path).resolve().relative_to(out).as_posix()
    except ValueError:
        return False
    return manifest.get(name) is not None and manifest[name] == _digest(Path(path))


def trajectory_path(target: Path) -> Path:
    """Where --save-trajectory writes the strip of a result."""
    return target.with_name(target.stem + ".trajectory.png")


def written_paths(job: Job, trajectory: bool) -> list[Path]:
    """What a job writes: its result, and its trajectory strip with --save-trajectory."""
    return [job.target, trajectory_path(job.target)] if trajectory else [job.target]


def _expand(item: str) -> list[tuple[Path, Path]]:
    """(file, name relative to its root) for a file, a folder (recursive, symlinked folders not followed)
    or a glob (whose ** follows symlinked folders: shortest paths first, so the loop-free name wins)."""
    path = Path(item)
    if item == "-":
        raise LmppmError("lmppm reads image files, not standard input ('-'): save the image to a file first.")
    if path.is_file():
        return [(path, Path(path.name))]
    if path.exists() and not path.is_dir():
        raise LmppmError(f"{item} is not a regular file (a pipe, device or socket); lmppm reads image files.")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise LmppmError(f"the folder {item} holds no image files.")
        return [(p, p.relative_to(path)) for p in files]
    if glob.has_magic(item):
        base = Path(*_prefix_parts(item))
        files = sorted(
            (Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file()), key=lambda p: (len(p.parts), p)
        )
        if not files:
            raise LmppmError(f"the pattern {item} matches no files.")
        return [(p, p.relative_to(base)) for p in files]
    raise LmppmError(f"{item} does not exist.")


def _prefix_parts(pattern: str) -> list[str]:
    """The folders of a glob pattern before its first wildcard."""
    prefix: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if glob.has_magic(part):
            break
        prefix.append(part)
    return prefix


def _check_targets(jobs: list[Job], real: dict[Path, str], trajectory: bool, output: str) -> None:
    sources = {real[j.source] for j in jobs}
    others = set(real.values()) - sources  # files of the input folders that lie in the output folder
    out = Path(output).resolve()
    manifest = _manifest(out) if others else {}
    seen: dict[str, Path] = {}
    for job in jobs:
        for path in written_paths(job, trajectory):
            target = os.path.realpath(path)
            if target in sources:
                raise LmppmError(f"refusing to write {path}: it is one of the inputs (choose another -o).")
            if target in others and not _ours(path, out, manifest):
                raise LmppmError(
                    f"-o {output} lies inside an input folder and already holds {path}, which may be one of your "
                    "images: choose an output folder outside the inputs, or an empty one."
                )
            if target in seen:
                raise LmppmError(f"{seen[target]} and {job.source} would both be written to {path}.")
            seen[target] = job.source
