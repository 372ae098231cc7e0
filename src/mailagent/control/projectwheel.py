"""The project's own wheel, zipped straight from the installed package (no build backend).

Pure Python (`py3-none-any`) with the `mailagent` console script, leaving out the subpackages a
host does not run. Entries carry a fixed timestamp, so the same source gives the same bytes
(and so the same MANIFEST) on every control machine.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterable
from pathlib import Path

EPOCH = (1980, 1, 1, 0, 0, 0)  # the oldest time a zip entry can hold


def package_files(package: Path, leave_out: Iterable[str] = ()) -> list[Path]:
    """The package's files, without byte code and without the subpackages in `leave_out`."""
    skipped = [package / name for name in leave_out]
    return [p for p in sorted(package.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            and not any(p.is_relative_to(folder) for folder in skipped)]


def project_wheel(package: Path, version: str, folder: Path, leave_out: Iterable[str] = (),
                  requires_python: str = ">=3.10") -> Path:
    """Write `<name>-<version>-py3-none-any.whl` for the package folder `package` into `folder`."""
    name = package.name
    dist_info = f"{name}-{version}.dist-info"
    files = {p.relative_to(package.parent).as_posix(): p.read_bytes()
             for p in package_files(package, leave_out)}
    files[f"{dist_info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                      f"Requires-Python: {requires_python}\n").encode()
    files[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: mailagent.control.projectwheel\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{name} = {name}.cli:main\n".encode()
    return _write_wheel(folder / f"{name}-{version}-py3-none-any.whl", files, f"{dist_info}/RECORD")


def _write_wheel(path: Path, files: dict[str, bytes], record_name: str) -> Path:
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    record.append(f"{record_name},,")
    files = {**files, record_name: ("\n".join(record) + "\n").encode()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, EPOCH)
            entry.external_attr = 0o644 << 16
            wheel.writestr(entry, data, zipfile.ZIP_DEFLATED)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
