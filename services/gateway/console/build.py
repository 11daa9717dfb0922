"""Build the console when its build is missing or stale; install Node.js (and, for the browser
tests, Chromium) from the OS packages when they are missing.

    python -m services.gateway.console.build             # what `make run` does (via devctl)
    python -m services.gateway.console.build --browser   # what `make test` does: also Chromium
    python -m services.gateway.console.build --force

Only the standard library: it runs before anything else is known to work. A build is fresh when
dist/.source-digest holds the digest of every source file (package files, config, src/).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

CONSOLE_DIR = Path(__file__).resolve().parent
DIST = CONSOLE_DIR / "dist"
DIGEST_FILE = DIST / ".source-digest"
NODE_MODULES = CONSOLE_DIR / "node_modules"
LOCK = CONSOLE_DIR / "package-lock.json"
# npm writes this copy of the lock when it installs: equal to ours means node_modules matches.
INSTALLED_LOCK = NODE_MODULES / ".package-lock.json"
SOURCE_FILES = ("package.json", "package-lock.json", "index.html", "vite.config.ts",
                "tsconfig.json")
SOURCE_DIRS = ("src", "public")
CHROMIUM = Path("/usr/bin/chromium")

Log = Callable[[str], None]


class ConsoleBuildError(Exception):
    """The console could not be built; the message says what to do."""


def _sources() -> Iterator[Path]:
    for name in SOURCE_FILES:
        path = CONSOLE_DIR / name
        if path.is_file():
            yield path
    for folder in SOURCE_DIRS:
        root = CONSOLE_DIR / folder
        if root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.is_file())


def source_digest() -> str:
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(str(path.relative_to(CONSOLE_DIR)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_fresh() -> bool:
    return (DIST / "index.html").is_file() and DIGEST_FILE.is_file() and (
        DIGEST_FILE.read_text().strip() == source_digest())


def _can_apt() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def apt_install(packages: list[str], log: Log) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update"],
                 ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        log("  $ " + " ".join(argv))
        result = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = "\n".join(result.stdout.decode(errors="replace").splitlines()[-20:])
            raise ConsoleBuildError(f"`{' '.join(argv)}` failed ({result.returncode}):\n{tail}")


def ensure_node(log: Log) -> None:
    if shutil.which("node") and shutil.which("npm"):
        return
    if not _can_apt():
        raise ConsoleBuildError(
            "Node.js and npm are needed to build the web console: install them "
            "(Debian/Ubuntu: sudo apt-get install -y nodejs npm; macOS: brew install node) "
            "and run `make run` again.")
    log("Node.js is not installed; installing the Debian packages nodejs and npm (apt-get) ...")
    # npm comes with nodejs from some repositories: ask only for what is missing.
    apt_install(["nodejs"] if shutil.which("npm") or _nodejs_bundles_npm() else
                ["nodejs", "npm"], log)


def _nodejs_bundles_npm() -> bool:
    """NodeSource's nodejs package contains npm and conflicts with Debian's npm."""
    result = subprocess.run(["apt-cache", "policy", "nodejs"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    return "nodesource" in result.stdout


def ensure_browser(log: Log) -> Path:
    """Chromium from the OS packages, for the console's browser tests."""
    if CHROMIUM.exists():
        return CHROMIUM
    if not _can_apt():
        raise ConsoleBuildError(
            f"The console's browser tests need Chromium at {CHROMIUM}: "
            "sudo apt-get install -y chromium fonts-wqy-zenhei")
    # With a CJK font the screenshots show the Chinese screens as users see them, not boxes.
    log("Chromium is not installed; installing the Debian packages chromium and "
        "fonts-wqy-zenhei (apt-get) ...")
    apt_install(["chromium", "fonts-wqy-zenhei"], log)
    if not CHROMIUM.exists():
        raise ConsoleBuildError(f"apt-get installed chromium but {CHROMIUM} is not there")
    return CHROMIUM


def _npm(args: list[str], log: Log) -> None:
    log("  $ npm " + " ".join(args))
    env = dict(os.environ, npm_config_fund="false", npm_config_audit="false",
               npm_config_update_notifier="false")
    result = subprocess.run(["npm", *args], cwd=CONSOLE_DIR, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.decode(errors="replace").splitlines()[-30:])
        raise ConsoleBuildError(f"`npm {' '.join(args)}` in {CONSOLE_DIR} failed "
                                f"({result.returncode}):\n{tail}")


def ensure_dependencies(log: Log) -> None:
    """`npm ci` unless node_modules already holds exactly the lock file's packages."""
    if INSTALLED_LOCK.is_file() and _same_lock():
        return
    ensure_node(log)
    _npm(["ci", "--no-audit", "--no-fund"], log)


def _same_lock() -> bool:
    import json

    try:
        ours = json.loads(LOCK.read_text(encoding="utf-8")).get("packages", {})
        installed = json.loads(INSTALLED_LOCK.read_text(encoding="utf-8")).get("packages", {})
    except (OSError, ValueError):
        return False
    # npm's copy leaves out the root entry ("") and optional packages of other platforms.
    return all(installed.get(name, {}).get("version") == entry.get("version")
               for name, entry in ours.items() if name and not entry.get("optional"))


def ensure_built(log: Log = print, force: bool = False) -> bool:
    """Build when missing or stale; True when it built."""
    if not force and is_fresh():
        return False
    log(f"Building the web console ({CONSOLE_DIR.relative_to(CONSOLE_DIR.parents[2])}) ...")
    ensure_node(log)
    ensure_dependencies(log)
    digest = source_digest()
    _npm(["run", "build"], log)
    DIGEST_FILE.write_text(digest + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="build even when fresh")
    parser.add_argument("--browser", action="store_true",
                        help="also make sure Chromium is installed (browser tests)")
    parser.add_argument("--test-deps", action="store_true",
                        help="only make sure node_modules is installed (component tests)")
    args = parser.parse_args(argv)
    try:
        if args.test_deps:
            ensure_dependencies(print)
            return 0
        built = ensure_built(print, force=args.force)
        print("Web console built." if built else "Web console build is up to date.")
        if args.browser:
            print(f"Chromium: {ensure_browser(print)}")
    except ConsoleBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
