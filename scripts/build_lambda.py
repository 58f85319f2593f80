"""Build the Lambda artifact: the function's code and its runtime dependencies only, as a zip.

    python scripts/build_lambda.py                            # -> build/lambda.zip, prints its size
    python scripts/build_lambda.py --stage-dir DIR --no-zip   # what `sam build` (BuildMethod: makefile) runs

Contents: ``handler.py``, the ``engine/`` and ``runtime/`` packages, each plugin package (the built-in ``steps/``
and those ``[tool.inbound-pipeline] plugins`` in ``pyproject.toml`` declares, plus any ``PIPELINE_PLUGINS`` adds;
``tools/`` never: nothing the handler imports lives there), ``pipelines/``, ``rules/``, ``pipeline-plugins.json``
(that plugin list, which the handler loads) and the wheels of ``[project.dependencies]``, resolved for the Lambda
platform (manylinux, CPython 3.11, arm64 by default) at the versions the project's ``constraints.txt`` pins (those it
was tested with), and installed as exact pins.

Before anything is downloaded, the staged artifact's plugins and every pipeline are loaded as the cold start will
load them (``python -m tools.stamp``): a pipeline that does not load (an unknown step, a plugin that does not
import) or a failing inline rule test fails the build, each finding printed ``FILE:LINE:COLUMN: message``. Left out:

- boto3 and what it brings (botocore, s3transfer, urllib3, python-dateutil, six), unless ``--with-boto3``: the
  python3.11 runtime provides them, and copies of our own would shadow the ones its boto3 was released with;
- twilio's REST client (``twilio/rest``, ~50 MB unzipped) and the HTTP stack only it uses (aiohttp, requests, …)
  (unless ``--full``): the pipeline uses twilio's request validator and TwiML, nothing else;
- the test suites and benchmarks that dependencies install inside their packages (``DEV_ONLY_DIRS``).

Neither is a list kept here: both are read from pip's resolution (``keep``), so a requirement that needs a part of
twilio's HTTP stack (a plugin's, on requests) gets it, and boto3's own requirements are whatever it declares.

Every ``.py`` is byte-compiled into unchecked-hash ``.pyc`` files: ``/var/task`` is read-only, so Python could not
cache its compilation there, and the zip's fixed timestamps would make timestamp-checked ``.pyc`` look stale.
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib
import json
import os
import platform
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The function's own packages; the plugin packages (``steps`` first) are added to them.
SOURCE_PACKAGES = ("engine", "runtime")
BUILTIN_PLUGINS = ("steps",)
DATA_DIRS = ("pipelines", "rules")
# The SDK the python3.11 runtime provides: it, and what it brings, are left out of the artifact (unless bundled).
RUNTIME_SDK = "boto3"
# Whose requirements are its REST client's only (the pipeline imports its request validator and TwiML).
TWILIO = "twilio"
# The runtime's SDK by the names it is imported with.
RUNTIME_PROVIDED_MODULES = frozenset({"boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six"})
# What of twilio the pipeline imports.
TWILIO_USED = ("twilio/request_validator.py", "twilio/twiml/messaging_response.py")
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# What installed distributions ship for their own development, never imported by the function (jsonschema's and
# referencing's test suites import pytest, jsonschema's benchmarks pyperf; neither is in the artifact).
DEV_ONLY_DIRS = frozenset({"tests", "benchmarks"})
# Where Lambda unpacks the artifact: the source path compiled into each .pyc.
TASK_ROOT = "/var/task"
PYTHON_VERSION = "3.11"


class BuildError(Exception):
    """The project cannot be built into a working artifact."""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _name(requirement: str) -> str:
    return _requirement(requirement)[0]


def _requirement(text: str) -> tuple[str, frozenset[str]]:
    """The (normalized) distribution name of a requirement and the extras it asks for."""
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", text)
    if not match:
        raise ValueError(f"unreadable requirement {text!r}")
    extras = frozenset(_normal(extra) for extra in (match.group(2) or "").split(",") if extra.strip())
    return _normal(match.group(1)), extras


def runtime_requirements(pyproject: Path) -> list[str]:
    """The project's runtime requirements, as declared in ``pyproject``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return list(project.get("dependencies", []))


def _excluded(path: Path, root: Path) -> bool:
    return "__pycache__" in path.parts


def _plugin_list() -> ModuleType:
    """``runtime.plugins`` of this project: where the plugin list is declared and recorded."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("runtime.plugins")


def project_plugins(root: Path, env: Mapping[str, str]) -> tuple[str, ...]:
    """The plugins the project at ``root`` declares (``runtime.plugins.declared_plugins``), built-in ``steps`` first."""
    return tuple(_plugin_list().declared_plugins(root, env))


def _plugin_files(root: Path, plugin: str) -> list[Path]:
    """The files of the top-level package (or module) holding ``plugin``, in the project at ``root``."""
    top = plugin.split(".")[0]
    if (root / top / "__init__.py").is_file():
        return list((root / top).rglob("*.py"))
    if (root / f"{top}.py").is_file():
        return [root / f"{top}.py"]
    raise BuildError(f"plugin {plugin!r}: the project has no {top}/__init__.py or {top}.py to put in the artifact")


def source_files(root: Path = ROOT, plugins: Sequence[str] = BUILTIN_PLUGINS) -> list[tuple[Path, str]]:
    """The function's own files and those of its ``plugins``, as (path, name in the artifact), sorted."""
    files = [(root / "handler.py", "handler.py")]
    for package in SOURCE_PACKAGES:
        files += [(path, path.relative_to(root).as_posix()) for path in (root / package).rglob("*.py")]
    for path in dict.fromkeys(path for plugin in plugins for path in _plugin_files(root, plugin)):
        files.append((path, path.relative_to(root).as_posix()))
    for directory in DATA_DIRS:
        files += [
            (path, path.relative_to(root).as_posix())
            for path in (root / directory).rglob("*")
            if path.is_file() and path.suffix in {".yaml", ".yml", ".json"}
        ]
    return sorted((item for item in files if not _excluded(item[0], root)), key=lambda item: item[1])


def _module_file(module: str, names: set[str]) -> str | None:
    for candidate in (module.replace(".", "/") + ".py", module.replace(".", "/") + "/__init__.py"):
        if candidate in names:
            return candidate
    return None


def missing_first_party(
    files: Sequence[tuple[Path, str]], entry: str = "handler.py", plugins: Sequence[str] = BUILTIN_PLUGINS
) -> list[str]:
    """First-party modules reachable by imports (lazy imports included) that are not in ``files``.

    The imports are followed from ``entry`` and from every file of the ``plugins`` (which the handler imports by
    name, and a plugin package by discovery); a plugin module missing from ``files`` is missing too.
    """
    by_name = {name: path for path, name in files}
    names = set(by_name)
    tops = {plugin.split(".")[0] for plugin in plugins}
    first_party = {*SOURCE_PACKAGES, *tops, Path(entry).stem}
    seen: set[str] = set()
    missing = {plugin for plugin in plugins if _module_file(plugin, names) is None}
    queue = [entry, *sorted(name for name in names if name.endswith(".py") and name.split("/")[0] in tops)]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse(by_name[name].read_text(encoding="utf-8"))
        package = name.rsplit("/", 1)[0].replace("/", ".") if "/" in name else ""
        for node in ast.walk(tree):
            # ``import a.b`` needs module a.b; ``from a import b`` needs module a, and b is a module or an attribute.
            required: list[str] = []
            optional: list[str] = []
            if isinstance(node, ast.Import):
                required = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                required = [base]
                optional = [f"{base}.{alias.name}" for alias in node.names]
            for module in required + optional:
                if module.split(".")[0] not in first_party:
                    continue
                found = _module_file(module, names)
                if found is not None:
                    queue.append(found)
                elif module in required:
                    missing.add(module)
    return sorted(missing)


def third_party_imports(
    files: Sequence[tuple[Path, str]], with_boto3: bool = False, plugins: Sequence[str] = BUILTIN_PLUGINS
) -> list[str]:
    """Every import of a third-party module in the function's own files (lazy ones included), sorted.

    Each is a statement (``import yaml``, ``from cryptography.hazmat.primitives.asymmetric import ec``): what the
    artifact must be able to run. Neither the standard library, nor the function's own packages, nor (unless
    ``with_boto3`` bundles them) the modules the Lambda runtime provides.
    """
    first_party = {*SOURCE_PACKAGES, *(plugin.split(".")[0] for plugin in plugins), "handler"}
    excluded = first_party | set(sys.stdlib_module_names) | (set() if with_boto3 else set(RUNTIME_PROVIDED_MODULES))
    found: set[tuple[str, str | None]] = set()
    for path, name in files:
        if name.endswith(".py"):
            found.update(_run_time_imports(ast.parse(path.read_text(encoding="utf-8"))))
    return sorted(
        f"from {module} import {member}" if member else f"import {module}"
        for module, member in found
        if module.split(".")[0] not in excluded
    )


def _run_time_imports(node: ast.AST) -> Iterable[tuple[str, str | None]]:
    """(module, imported name or None) of the absolute imports under ``node`` that can run.

    Not those for type checkers (``if TYPE_CHECKING:``), nor those guarded by ``except ImportError`` (optional).
    """
    if isinstance(node, ast.Import):
        yield from ((alias.name, None) for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level == 0 and node.module:
            yield from ((node.module, alias.name) for alias in node.names)
    elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        for branch in node.orelse:
            yield from _run_time_imports(branch)
    elif isinstance(node, ast.Try) and any(_catches_import_error(handler) for handler in node.handlers):
        for guarded in [*node.handlers, *node.orelse, *node.finalbody]:
            yield from _run_time_imports(guarded)
    else:
        for child in ast.iter_child_nodes(node):
            yield from _run_time_imports(child)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = set(re.findall(r"\w+", ast.unparse(handler.type))) if handler.type is not None else set()
    return handler.type is None or bool({"ImportError", "ModuleNotFoundError"} & names)


def _pip(args: Sequence[str], doing: str) -> None:
    """Run pip with ``args``; BuildError saying what it could not do (pip has printed why)."""
    done = subprocess.run([sys.executable, "-m", "pip", *args], check=False)
    if done.returncode != 0:
        raise BuildError(
            f"pip could not {doing} (exit status {done.returncode}; pip's message is above); "
            "is the package index reachable?"
        )


def resolve(requirements: Sequence[str], arch: str, constraints: Path | None = None) -> list[dict[str, Any]]:
    """What ``requirements`` need on the Lambda platform: the items of pip's installation report, one a distribution.

    Each has its ``metadata`` (``name``, ``version``, ``requires_dist``), from which ``keep`` picks the pins.
    ``constraints`` (a pip constraints file) holds them at the versions the project was tested with.
    """
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        _pip(
            [
                "install",
                "--quiet",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                *_platform_args(arch),
                *(["--constraint", str(constraints)] if constraints is not None else []),
                "--target",
                str(Path(scratch) / "target"),
                *requirements,
            ],
            "resolve the runtime dependencies for the Lambda platform",
        )
        installs: list[dict[str, Any]] = json.loads(report.read_text(encoding="utf-8"))["install"]
    return installs


def _platform_args(arch: str) -> list[str]:
    return [
        "--platform",
        PLATFORMS[arch],
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
    ]


def _needs(requires_dist: Iterable[str], extras: frozenset[str]) -> Iterable[tuple[str, frozenset[str]]]:
    """The requirements a distribution asked for with ``extras`` has: all but those of other extras.

    Other markers are taken as true: only distributions of pip's report are ever kept, so at worst one it
    resolved for another requirement is kept too.
    """
    for entry in requires_dist:
        requirement, _, marker = entry.partition(";")
        named = {_normal(extra) for extra in re.findall(r"""\bextra\s*==\s*["']([^"']+)["']""", marker)}
        if not named or named & extras:
            yield _requirement(requirement)


def _reached(
    report: Sequence[Mapping[str, Any]], roots: Iterable[tuple[str, frozenset[str]]], ends: frozenset[str]
) -> set[str]:
    """The distributions of ``report`` that ``roots`` need, not following the requirements of those in ``ends``."""
    metadata = {_normal(item["metadata"]["name"]): item["metadata"] for item in report}
    extras_of: dict[str, frozenset[str]] = {}
    queue = list(roots)
    while queue:
        name, extras = queue.pop()
        if name not in metadata or (name in extras_of and extras <= extras_of[name]):
            continue
        extras_of[name] = extras_of.get(name, frozenset()) | extras
        if name not in ends:
            queue.extend(_needs(metadata[name].get("requires_dist") or (), extras_of[name]))
    return set(extras_of)


def runtime_provided(report: Sequence[Mapping[str, Any]], requirements: Sequence[str]) -> set[str]:
    """What the runtime's SDK brings (itself included), less the other ``requirements``, which keep their own pins."""
    roots = [_requirement(requirement) for requirement in requirements]
    sdk = [root for root in roots if root[0] == RUNTIME_SDK]
    return _reached(report, sdk, frozenset()) - {name for name, _ in roots if name != RUNTIME_SDK}


def keep(
    report: Sequence[Mapping[str, Any]], requirements: Sequence[str], *, with_boto3: bool = False, slim: bool = True
) -> list[str]:
    """The pins (``name==version``) to install, from pip's ``report`` of ``requirements``, sorted.

    What the requirements need, less what the runtime provides (``runtime_provided``; unless ``with_boto3``) and,
    when ``slim``, less what only twilio's REST client needs: twilio's own requirements are not followed, so its
    HTTP stack is kept exactly when another requirement needs a part of it.
    """
    provided = frozenset() if with_boto3 else frozenset(runtime_provided(report, requirements))
    roots = [root for root in map(_requirement, requirements) if root[0] not in provided]
    kept = _reached(report, roots, provided | ({TWILIO} if slim else frozenset())) - provided
    return sorted(
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in report
        if _normal(item["metadata"]["name"]) in kept
    )


def install(pins: Sequence[str], target: Path, arch: str) -> None:
    """Install exactly ``pins`` (no dependency resolution) into ``target`` for the Lambda platform."""
    _pip(
        ["install", "--quiet", "--no-deps", "--no-compile", "--target", str(target), *_platform_args(arch), *pins],
        "install the runtime dependencies",
    )


def drop_dev_only(stage: Path, first_party: Iterable[str]) -> list[str]:
    """Remove the test suites and benchmarks inside the installed packages of ``stage``; what was removed, sorted.

    Only in third-party packages: a top-level directory named in ``first_party`` is the function's own.
    """
    own = set(first_party)
    found = {
        path
        for top in stage.iterdir()
        if top.is_dir() and top.name not in own and not top.name.endswith(".dist-info")
        for path in top.rglob("*")
        if path.is_dir() and path.name in DEV_ONLY_DIRS
    }
    outermost = sorted(path for path in found if not any(parent in found for parent in path.parents))
    for path in outermost:
        shutil.rmtree(path)
    return [path.relative_to(stage).as_posix() for path in outermost]


def prune_records(stage: Path) -> None:
    """Keep in each installed distribution's ``RECORD`` only the files ``stage`` holds.

    The build removes some (``bin/``, twilio's REST client, the test suites). The scripts in ``bin/`` begin with the
    path of the interpreter that installed them: their hashes, left in ``RECORD``, would make the artifact depend on
    where it was built (a new code version to deploy from every build environment).
    """
    root = stage.resolve()
    for record in sorted(stage.glob("*.dist-info/RECORD")):
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if line.strip() and _holds(root, next(csv.reader([line]))[0])]
        record.write_text("".join(kept), encoding="utf-8", newline="")


def _holds(root: Path, name: str) -> bool:
    path = (root / name).resolve()
    return path.is_relative_to(root) and path.is_file()


def smoke_import(stage: Path, arch: str, imports: Sequence[str]) -> None:
    """Run ``imports`` (``third_party_imports``) with ``stage`` alone on the path, only when built for this machine.

    Those run on first use only (``cryptography``, for the email signature) are run here as well: a module the
    artifact cannot load fails the build, not the first request that needs it. Only this Python when it is the
    runtime's can: the compiled dependencies are the runtime's wheels. It writes no bytecode into ``stage``.
    """
    if platform.machine().lower() not in {"x86_64": {"x86_64", "amd64"}, "arm64": {"arm64", "aarch64"}}[arch]:
        print(f"note: built for {arch} on {platform.machine()}; import check skipped")
        return
    if not _runtime_python():
        print(f"note: Python {platform.python_version()} is not {PYTHON_VERSION}; import check skipped")
        return
    code = "\n".join([f"import sys; sys.path[:0] = [{str(stage)!r}]", *imports])
    subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], check=True)
    print(f"import check: ok ({len(imports)} imports)")


def copy_sources(files: Sequence[tuple[Path, str]], target: Path) -> None:
    """Copy the function's own files into ``target``, with its configuration directories (even empty ones)."""
    for directory in DATA_DIRS:
        (target / directory).mkdir(parents=True, exist_ok=True)
    for path, name in files:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


def record_plugins(stage: Path, plugins: Sequence[str]) -> None:
    """Write the plugin list into the artifact: its handler loads exactly these (``runtime.plugins``)."""
    record = stage / _plugin_list().RECORD_FILE
    record.write_text(json.dumps({"plugins": list(plugins)}) + "\n", encoding="utf-8")


def check_and_stamp(stage: Path) -> tuple[bool, str]:
    """Load the staged artifact's plugins and pipelines as its cold start will, and stamp them (``tools.stamp``).

    Runs in a fresh interpreter in ``stage`` (its code, not this process's); returns whether every pipeline loads,
    and the output (the located problems, or the stamp's notes).
    """
    # No bytecode of this Python in the artifact: compile_tree writes the runtime's, when this Python is it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stage), str(ROOT)]), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PIPELINE_PLUGINS", None)  # the artifact's own list (pipeline-plugins.json) only
    done = subprocess.run(
        [sys.executable, "-m", "tools.stamp", "."], cwd=stage, env=env, capture_output=True, text=True, check=False
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _runtime_python() -> bool:
    """Whether this Python is the runtime's version (``PYTHON_VERSION``)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON_VERSION


def compile_tree(target: Path) -> bool:
    """Byte-compile ``target`` for the runtime's Python; False (skipped) when this is another Python.

    Each ``.pyc`` names its source as it will be in Lambda (``/var/task/…``), not as it is in this build's
    directory, so two builds of the same sources are byte-identical. Files are compiled in one process, in
    sorted order: marshal's output depends on what the process has compiled before.
    """
    if not _runtime_python():
        print(f"note: Python {platform.python_version()} is not {PYTHON_VERSION}; .pyc files not precompiled")
        return False
    ok = True
    for source in sorted(target.rglob("*.py")):
        name = source.relative_to(target).as_posix()
        try:
            py_compile.compile(
                str(source),
                dfile=f"{TASK_ROOT}/{name}",
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError as exc:
            print(f"note: {name} does not compile ({exc.exc_type_name}); left as source")
            ok = False
    return ok


def write_zip(source: Path, output: Path) -> None:
    """A reproducible zip of ``source`` (sorted entries, fixed timestamps and modes)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)


def tree_size(root: Path) -> int:
    """Bytes of every file under ``root``."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def _top_level_sizes(root: Path) -> list[tuple[str, int]]:
    sizes: dict[str, int] = {}
    for path in root.rglob("*"):
        if path.is_file():
            top = path.relative_to(root).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    return sorted(sizes.items(), key=lambda item: -item[1])


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MiB"


def _stage_dir(stage: Path, project: Path) -> str | None:
    """Empty ``stage`` for the build; the reason when it holds anything but an earlier build instead.

    Only an earlier build's files are removed (what ``sam build`` leaves in its ``ARTIFACTS_DIR``): a directory
    named by mistake (a source tree, the home directory) is refused, not deleted; so is a file.
    """
    if stage.exists() and not stage.is_dir():
        return f"{stage} is a file, not a directory; give an empty or new directory"
    if stage.exists() and any(stage.iterdir()):
        if (stage / "pyproject.toml").exists() or stage.resolve() in (project.resolve(), *project.resolve().parents):
            return f"{stage} looks like a source tree; give an empty or build directory"
        record = _plugin_list().RECORD_FILE
        if not ((stage / "handler.py").is_file() and (stage / record).is_file()):
            earlier = f"handler.py, {record}"
            return f"{stage} is not empty and holds no earlier build ({earlier}); give an empty or new directory"
        shutil.rmtree(stage)
    try:
        stage.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, no permission
        return f"{stage} cannot be made: {exc.strerror or exc}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Build the artifact; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="the project to build (default: this one)")
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "lambda.zip", help="the zip to write")
    parser.add_argument(
        "--stage-dir", type=Path, help="assemble here (kept): a new or empty directory, or an earlier build's"
    )
    parser.add_argument("--no-zip", action="store_true", help="only assemble --stage-dir (sam build zips it)")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="arm64", help="as the template's Architectures")
    parser.add_argument("--with-boto3", action="store_true", help="bundle boto3/botocore instead of the runtime's")
    parser.add_argument("--full", action="store_true", help="keep twilio's REST client and its HTTP stack")
    args = parser.parse_args(argv)
    if args.no_zip and args.stage_dir is None:
        parser.error("--no-zip needs --stage-dir")

    project: Path = args.project
    try:
        plugins = project_plugins(project, os.environ)
        files = source_files(project, plugins)
    except (BuildError, ImportError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"plugins: {', '.join(plugins)}")
    missing = missing_first_party(files, plugins=plugins)
    if missing:
        print(f"error: handler.py imports modules the artifact would not contain: {', '.join(missing)}")
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        stage = args.stage_dir or Path(scratch) / "stage"
        refused = _stage_dir(stage, project)
        if refused:
            print(f"error: {refused}")
            return 1
        copy_sources(files, stage)
        record_plugins(stage, plugins)
        loads, report = check_and_stamp(stage)
        print(report)
        if not loads:
            print("error: the configuration does not load with the artifact's plugins; nothing was built")
            return 1
        requirements = runtime_requirements(project / "pyproject.toml")
        constraints = project / "constraints.txt"
        try:
            resolution = resolve(requirements, args.arch, constraints if constraints.is_file() else None)
            pins = keep(resolution, requirements, with_boto3=args.with_boto3, slim=not args.full)
            install(pins, stage, args.arch)
        except BuildError as exc:
            print(f"error: {exc}")
            return 1
        for junk in [*stage.glob("bin"), *(stage.glob("twilio/rest") if not args.full else [])]:
            shutil.rmtree(junk)
        first_party = {*SOURCE_PACKAGES, *(plugin.split(".")[0] for plugin in plugins), *DATA_DIRS}
        dropped = drop_dev_only(stage, first_party)
        prune_records(stage)
        if dropped:
            print(f"left out of the dependencies: {', '.join(dropped)}")
        absent = [name for name in TWILIO_USED if not (stage / name).is_file()]
        if absent:
            print(f"error: the artifact lacks {', '.join(absent)}")
            return 1
        smoke_import(stage, args.arch, third_party_imports(files, args.with_boto3, plugins))
        compile_tree(stage)
        unzipped = tree_size(stage)
        print(f"dependencies: {' '.join(pins)}")
        provided = sorted(runtime_provided(resolution, requirements)) if not args.with_boto3 else ["nothing"]
        print(f"left to the runtime: {', '.join(provided)}")
        for name, size in _top_level_sizes(stage)[:8]:
            print(f"  {_mib(size):>10}  {name}")
        print(f"unzipped: {_mib(unzipped)} ({unzipped} bytes; Lambda's limit is {_mib(LAMBDA_UNZIPPED_LIMIT)})")
        if unzipped > LAMBDA_UNZIPPED_LIMIT:
            print("error: the unzipped artifact exceeds Lambda's limit")
            return 1
        if not args.no_zip:
            write_zip(stage, args.output)
            size = args.output.stat().st_size
            print(f"wrote {args.output}: {_mib(size)} ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
