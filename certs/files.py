"""Certificate files on disk: `ca.crt`, `tls.crt`, `tls.key` (and `ca.key`).

Each file is written to a temporary name in the same folder and renamed over
the old one, so a reader (the server's reload poll) never sees half a file.
Keys are created 0600 from the start. Key material is never logged.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from certs.authority import KeyPair

CA_CERT: Final = "ca.crt"
CA_KEY: Final = "ca.key"
TLS_CERT: Final = "tls.crt"
TLS_KEY: Final = "tls.key"


@dataclass(frozen=True)
class Bundle:
    """What one folder holds: the CA (its key only where renewals happen) and the serving pair."""

    ca_cert: bytes
    serving: KeyPair
    ca_key: bytes | None = None


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to `path` via a same-folder temp file and rename."""
    descriptor, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_bundle(directory: str | Path, bundle: Bundle) -> None:
    """Write the four files; keys first, each 0600.

    A reader polling in between may see a new key beside the old certificate
    for a moment; the server's reload treats a mismatched pair as "not yet"
    and tries again on its next poll.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if bundle.ca_key is not None:
        write_atomic(folder / CA_KEY, bundle.ca_key, mode=0o600)
    write_atomic(folder / CA_CERT, bundle.ca_cert, mode=0o644)
    write_atomic(folder / TLS_KEY, bundle.serving.key_pem, mode=0o600)
    write_atomic(folder / TLS_CERT, bundle.serving.cert_pem, mode=0o644)


def read_bundle(directory: str | Path) -> Bundle:
    """Read a folder written by `write_bundle`; raises OSError when a file is missing."""
    folder = Path(directory)
    ca_key_path = folder / CA_KEY
    return Bundle(
        ca_cert=(folder / CA_CERT).read_bytes(),
        serving=KeyPair((folder / TLS_CERT).read_bytes(), (folder / TLS_KEY).read_bytes()),
        ca_key=ca_key_path.read_bytes() if ca_key_path.exists() else None,
    )
