"""Plan, then apply: the file changes a command makes, as data, and writing them safely.

``plan_changes`` compares rendered files with what is on disk and with the manifest of what mlmon wrote last
time, and classifies every file: create, identical, update (mlmon wrote it and nobody touched it since), or
conflict (someone edited it). ``apply_plan`` writes atomically and never overwrites a conflict unless forced:
it writes ``FILE.mlmon-new`` beside it instead. ``--dry-run`` is a plan that is printed and not applied.

The manifest also records a fingerprint of the inputs each file was rendered from (the spec, the templates,
mlmon's version). When the fingerprint and every file on disk still match, :func:`unchanged_plan` answers
"all identical" without rendering anything.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mlmon import __version__
from mlmon.errors import MlmonError, OutputConflict, UnsafePath
from mlmon.layout import builtin_templates_dir

MANIFEST_NAME = ".mlmon-manifest.json"
CONFLICT_SUFFIX = ".mlmon-new"

Action = Literal["create", "identical", "update", "conflict"]
_WRITE_HINT = "check that the folder exists, is writable, and that the path is not a folder"


@dataclass(frozen=True)
class FileChange:
    """One file mlmon wants to write: where, what, and how it relates to what is there now."""

    path: str  # relative to the plan's root
    action: Action
    content: str
    old_content: str | None = None

    def diff(self) -> str:
        if self.action == "identical":
            return ""
        old = (self.old_content or "").splitlines(keepends=True)
        new = self.content.splitlines(keepends=True)
        fromfile = f"a/{self.path}" if self.old_content is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, fromfile, f"b/{self.path}"))


@dataclass
class Manifest:
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 of what mlmon last wrote
    inputs: dict[str, str] = field(default_factory=dict)  # path -> fingerprint of what it was rendered from
    copies: dict[str, str] = field(default_factory=dict)  # FILE.mlmon-new -> sha256 of what mlmon wrote there


@dataclass
class Plan:
    root: Path
    changes: list[FileChange]
    manifest: Manifest = field(default_factory=Manifest)

    @property
    def conflicts(self) -> list[FileChange]:
        return [c for c in self.changes if c.action == "conflict"]

    @property
    def has_changes(self) -> bool:
        return any(c.action != "identical" for c in self.changes)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safe_target(root: Path, relative: str) -> Path:
    """``root/relative``, refusing anything that would land outside ``root`` (``..``, absolute paths,
    symlinks pointing elsewhere)."""
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise UnsafePath(f"{relative} is outside the output folder {root}")
    root_resolved = root.resolve()
    target = (root / relative).resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise UnsafePath(
            f"{root / relative} resolves to {target}, outside the output folder {root_resolved}",
            "remove the symlink, or choose another --out folder",
        )
    return root / relative


def read_manifest(root: Path) -> Manifest:
    path = root / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files, inputs, copies = data["files"], data.get("inputs", {}), data.get("copies", {})
        for name, mapping in (("files", files), ("inputs", inputs), ("copies", copies)):
            if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
                raise ValueError(f"{name} must map paths to hashes")
        return Manifest(dict(files), dict(inputs), dict(copies))
    except (FileNotFoundError, NotADirectoryError):  # nothing written there yet
        return Manifest()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MlmonError(
            f"the manifest {path} is unreadable: {exc}",
            "delete it and run again; files you edited will then show as conflicts rather than be overwritten",
        ) from None


def plan_changes(root: str | Path, rendered: Mapping[str, str]) -> Plan:
    """Classify each rendered file against the disk and the manifest. Reads only; writes nothing."""
    root = Path(root)
    manifest = read_manifest(root)
    changes = []
    for relative, content in rendered.items():
        target = safe_target(root, relative)
        try:
            old = target.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):  # writing it will say why, if it cannot be written
            changes.append(FileChange(relative, "create", content))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise MlmonError(f"cannot read {target}: {exc}") from None
        if old == content:
            action: Action = "identical"
        elif manifest.files.get(relative) == sha256(old):
            action = "update"
        else:  # edited since mlmon wrote it, or written by someone else
            action = "conflict"
        changes.append(FileChange(relative, action, content, old))
    return Plan(root, changes, manifest)


# ------------------------------------------------------------------------------------------------------
# Nothing changed?


def inputs_fingerprint(spec_text: bytes, templates_dir: str | Path | None) -> str:
    """A hash of everything the generated files depend on: mlmon's version, the spec's text, and every
    template, mlmon's own and the overriding ones."""
    digest = hashlib.sha256()
    for part in (__version__.encode(), spec_text):
        digest.update(len(part).to_bytes(8, "big") + part)
    folders = [builtin_templates_dir()] + ([Path(templates_dir)] if templates_dir else [])
    for folder in folders:
        for template in sorted(folder.rglob("*.j2")):
            name = template.relative_to(folder).as_posix().encode()
            content = template.read_bytes()
            digest.update(len(name).to_bytes(8, "big") + name + len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


def unchanged_plan(root: str | Path, fingerprint: str, outputs: Iterable[str]) -> Plan | None:
    """A plan of identical files when every output was rendered from the same inputs and is on disk as mlmon
    wrote it; None when anything differs (then render and plan as usual)."""
    root = Path(root)
    try:
        manifest = read_manifest(root)
    except MlmonError:
        return None
    changes = []
    for relative in outputs:
        if manifest.inputs.get(relative) != fingerprint:
            return None
        try:
            content = safe_target(root, relative).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, UnsafePath):
            return None
        if sha256(content) != manifest.files.get(relative):
            return None
        changes.append(FileChange(relative, "identical", content, content))
    return Plan(root, changes, manifest)


# ------------------------------------------------------------------------------------------------------
# Apply


def write_atomic(path: Path, content: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers see the old file or the new one,
    never half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise MlmonError(f"cannot write {path}: {exc.strerror or exc}", _WRITE_HINT) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise MlmonError(f"cannot write {path}: {exc.strerror or exc}", _WRITE_HINT) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_all(writes: list[tuple[Path, str]]) -> dict[Path, MlmonError]:
    """write_atomic each file, several at a time: each waits on its own fsync, and the filesystem's journal
    commits concurrent ones together, so a first `mlmon init` does not wait for a dozen commits in a row.
    Every write is attempted; returns the error of each file that could not be written."""
    failed: dict[Path, MlmonError] = {}
    if len(writes) < 2:
        for path, content in writes:
            try:
                write_atomic(path, content)
            except MlmonError as exc:
                failed[path] = exc
        return failed
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(writes))) as pool:
        futures = [(path, pool.submit(write_atomic, path, content)) for path, content in writes]
    for path, future in futures:
        error = future.exception()
        if isinstance(error, MlmonError):
            failed[path] = error
        elif error is not None:
            raise error
    return failed


def _conflict_copy(plan: Plan, relative: str, content: str) -> tuple[str, bool]:
    """Where the new version of an edited file goes, and whether it must be written there.

    ``FILE.mlmon-new`` unless that holds something mlmon did not write (a hand merge in progress, which the
    conflict hint invited): then the first ``FILE.mlmon-new.N`` that is free or already holds ``content``."""
    name = relative + CONFLICT_SUFFIX
    for number in range(2, 1000):
        target = safe_target(plan.root, name)
        try:
            old = target.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return name, True
        except (OSError, UnicodeDecodeError):
            old = None
        if old == content:
            return name, False
        if old is not None and plan.manifest.copies.get(name) == sha256(old):
            return name, True  # mlmon's own earlier copy, untouched since
        name = f"{relative}{CONFLICT_SUFFIX}.{number}"
    raise MlmonError(
        f"too many {relative}{CONFLICT_SUFFIX}.N copies", f"merge or delete the {CONFLICT_SUFFIX} copies"
    )


@dataclass(frozen=True)
class ApplyResult:
    written: list[str]
    conflict_copies: list[str]


def apply_plan(plan: Plan, force: bool = False, fingerprint: str | None = None) -> ApplyResult:
    """Write the plan. A conflict is overwritten only with ``force``; otherwise its new content goes to
    ``FILE.mlmon-new`` and :class:`OutputConflict` is raised after everything else was written.

    ``fingerprint`` (from :func:`inputs_fingerprint`) is recorded for each file now as rendered, so that the
    next run with the same inputs can skip rendering."""
    written, copies, kept = [], [], []
    writes: list[tuple[Path, str]] = []
    # What the manifest will say of each file if its write succeeds: (manifest key, hash, fingerprint).
    records: dict[Path, tuple[str, str, str | None]] = {}
    files, inputs = dict(plan.manifest.files), dict(plan.manifest.inputs)
    copy_hashes = dict(plan.manifest.copies)
    for change in plan.changes:
        target = safe_target(plan.root, change.path)
        if change.action == "conflict" and not force:
            copy, must_write = _conflict_copy(plan, change.path, change.content)
            if copy != change.path + CONFLICT_SUFFIX:
                kept.append(change.path + CONFLICT_SUFFIX)
            if must_write:
                writes.append((safe_target(plan.root, copy), change.content))
            copy_hashes[copy] = sha256(change.content)
            copies.append(copy)
            inputs.pop(change.path, None)
            continue
        if change.action != "identical":
            writes.append((target, change.content))
            written.append(change.path)
            records[target] = (change.path, sha256(change.content), fingerprint)
            continue
        files[change.path] = sha256(change.content)
        if fingerprint is None:
            inputs.pop(change.path, None)
        else:
            inputs[change.path] = fingerprint
    failed = _write_all(writes)
    for target, (relative, digest, print_) in records.items():
        if target in failed:
            continue  # the file on disk is still the old one, and the manifest keeps saying so
        files[relative] = digest
        if print_ is None:
            inputs.pop(relative, None)
        else:
            inputs[relative] = print_
    for path in failed:
        copy_hashes.pop(path.relative_to(plan.root).as_posix(), None)
    # The manifest last: it records only what is on disk, including when some files could not be written.
    manifest_doc = {
        "generator": f"mlmon {__version__}",
        "files": dict(sorted(files.items())),
        "inputs": dict(sorted(inputs.items())),
        "copies": dict(sorted(copy_hashes.items())),
    }
    write_atomic(plan.root / MANIFEST_NAME, json.dumps(manifest_doc, indent=2) + "\n")
    if failed:
        first = next(iter(failed.values()))
        others = len(failed) - 1
        if others:
            raise MlmonError(f"{first.message} (and {others} more file(s))", first.hint)
        raise first
    if copies:
        note = (
            f"; {', '.join(kept)} had been edited since mlmon wrote it, so it was kept and the new version "
            "written beside it"
            if kept
            else ""
        )
        raise OutputConflict(
            f"{len(copies)} file(s) were edited since mlmon wrote them and were left alone: "
            + ", ".join(change.path for change in plan.conflicts),
            f"the new versions are in {', '.join(copies)}{note}; merge by hand, or run again with --force "
            "to overwrite",
        )
    return ApplyResult(written, copies)
