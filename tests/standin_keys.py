"""Node keys for the stellar-core stand-in: StrKey and ed25519, standard library only.

It ships beside `standin.py` in the stand-in image (a container with python3 only), so it
imports nothing but the standard library. What it copies from stellar-core:

- StrKey (`src/crypto/StrKey.cpp`, `KeyUtils.h`): the version byte shifted left by 3, the
  payload, a CRC16-XModem of both (little-endian), base32 without padding. Decoding wants a
  length that is a multiple of 8, a good CRC, the right version and payload size, and a
  length that re-encodes the same, as `fromStrKey` and `SecretKey::fromStrKeySeed` check.
  Seeds `S...` are version 18 (`STRKEY_SEED_ED25519`), node keys `G...` version 6
  (`STRKEY_PUBKEY_ED25519`).
- The node key of a seed: libsodium's `crypto_sign_seed_keypair`, i.e. RFC 8032 section
  5.1.5: SHA-512 of the 32-byte seed, its first half clamped, times the base point,
  encoded as y with the sign of x in the top bit.
- `gen-seed` (`ApplicationUtils.cpp` genSeed): 32 random bytes as a seed.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

SEED_VERSION = 18  # 'S'
PUBLIC_KEY_VERSION = 6  # 'G'
KEY_BYTES = 32
STRKEY_LENGTH = 56  # base32 of 1 + 32 + 2 bytes


class InvalidStrKey(ValueError):
    """A StrKey stellar-core refuses; the message is its own ("invalid seed", ...)."""


def crc16_xmodem(data: bytes) -> int:
    """CRC16-XModem (polynomial 0x1021, initial 0), stellar-core's `crc16`."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def encode(version: int, payload: bytes) -> str:
    """`strKey::toStrKey`: version << 3, payload, CRC16 little-endian, base32 unpadded."""
    body = bytes([version << 3]) + payload
    crc = crc16_xmodem(body)
    return base64.b32encode(body + bytes([crc & 0xFF, crc >> 8])).decode().rstrip("=")


def decode(text: str) -> tuple[int, bytes]:
    """`strKey::fromStrKey`: (version, payload); InvalidStrKey when it does not decode."""
    if len(text) % 8 != 0:
        raise InvalidStrKey("length is not a multiple of 8")
    try:
        raw = base64.b32decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidStrKey("not base32") from exc
    if len(raw) < 3:
        raise InvalidStrKey("too short")
    body, crc = raw[:-2], raw[-2] | raw[-1] << 8
    if crc16_xmodem(body) != crc:
        raise InvalidStrKey("bad checksum")
    return body[0] >> 3, body[1:]


def _decode_key(text: str, version: int, message: str) -> bytes:
    try:
        got, payload = decode(text)
    except InvalidStrKey:
        raise InvalidStrKey(message) from None
    if got != version or len(payload) != KEY_BYTES or len(text) != STRKEY_LENGTH:
        raise InvalidStrKey(message)
    return payload


def seed_bytes(seed: str) -> bytes:
    """The 32 bytes of an `S...` seed; InvalidStrKey("invalid seed") as `fromStrKeySeed`."""
    return _decode_key(seed, SEED_VERSION, "invalid seed")


def public_key_bytes(key: str) -> bytes:
    """The 32 bytes of a `G...` key; InvalidStrKey("bad public key") as `KeyUtils::fromStrKey`."""
    return _decode_key(key, PUBLIC_KEY_VERSION, "bad public key")


def random_seed() -> str:
    """A fresh `S...` seed, as `stellar-core gen-seed` makes one."""
    return encode(SEED_VERSION, secrets.token_bytes(KEY_BYTES))


def public_key_of(seed: str) -> str:
    """The `G...` node key of an `S...` seed; InvalidStrKey("invalid seed") if it is none."""
    return encode(PUBLIC_KEY_VERSION, ed25519_public_key(seed_bytes(seed)))


# ed25519 (RFC 8032), only what deriving a public key takes

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BASE = (_BX, _BY, 1, _BX * _BY % _P)  # extended coordinates (X, Y, Z, T)

_Point = tuple[int, int, int, int]


def _add(p: _Point, q: _Point) -> _Point:
    """RFC 8032 5.1.4 point addition (complete: it also doubles)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(scalar: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)  # the neutral element
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def ed25519_public_key(seed: bytes) -> bytes:
    """RFC 8032 5.1.5: the 32-byte public key of a 32-byte private key (the seed)."""
    if len(seed) != KEY_BYTES:
        raise ValueError("an ed25519 seed is 32 bytes")
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    x, y, z, _ = _multiply(a, _BASE)
    z_inverse = pow(z, _P - 2, _P)
    x, y = x * z_inverse % _P, y * z_inverse % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")
