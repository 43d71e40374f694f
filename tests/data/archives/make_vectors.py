"""Build the archive test vectors in this folder from fixed inputs and seeded randomness.

Run `python tests/data/archives/make_vectors.py` from the repository root to (re)write them;
tests/eventlog/test_cryptobox.py rebuilds them in memory and requires identical bytes, so any change to the
format shows up as a failing test rather than as silently unreadable archives.
"""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

from eventlog.cold.container import _seal
from eventlog.cold.keys import Argon2Params, Keys, SymmetricKey, X25519Identity

HERE = Path(__file__).resolve().parent
PASSPHRASE = "correct horse battery staple"
KEY = bytes(range(32))
IDENTITY_SECRET = bytes(range(0x40, 0x60))


def ndjson(count: int) -> bytes:
    """Seeded segment-like lines."""
    rng = random.Random(7)
    lines = [json.dumps({"seq": seq, "type": "observed", "event_id": f"{rng.getrandbits(128):032x}",
                         "natural_key": f"Q{rng.randrange(10**6)}"}, separators=(",", ":"))
             for seq in range(1, count + 1)]
    return ("\n".join(lines) + "\n").encode()


def vectors() -> dict[str, bytes]:
    """Every file of this folder, by name."""
    identity = X25519Identity.from_text(_secret_text(IDENTITY_SECRET))
    plain_key = b"hello, archive\n"
    plain_x25519 = ndjson(40)
    plain_passphrase = bytes(random.Random(3).randbytes(2500))
    cases = [
        ("key-none.evlarc", plain_key, Keys(key=SymmetricKey(KEY)), "none", 65536,
         {"segment": "00000000000000000001-00000000000000000003"}),
        ("x25519-zstd.evlarc", plain_x25519, Keys(recipients=[identity.recipient]), "zstd", 65536,
         {"first_seq": 1, "last_seq": 40}),
        ("passphrase-none-3chunks.evlarc", plain_passphrase, Keys(passphrase=PASSPHRASE), "none", 1024, {}),
    ]
    files = {"key.bin": KEY, "identity.txt": (identity.secret_text() + "\n").encode(),
             "passphrase.txt": (PASSPHRASE + "\n").encode()}
    for name, plain, keys, compression, chunk_size, metadata in cases:
        out = io.BytesIO()
        _seal(io.BytesIO(plain), out, keys=keys, compression=compression, level=3,  # type: ignore[arg-type]
              metadata=metadata, kdf=Argon2Params(memory_kib=1024, iterations=1, lanes=1),
              chunk_size=chunk_size, randbytes=random.Random(name).randbytes)
        files[name] = out.getvalue()
        files[name.replace(".evlarc", ".plain")] = plain
    return files


def _secret_text(raw: bytes) -> str:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return X25519Identity(X25519PrivateKey.from_private_bytes(raw)).secret_text()


if __name__ == "__main__":
    for file_name, data in vectors().items():
        (HERE / file_name).write_bytes(data)
        print(file_name, len(data), file=sys.stderr)
