"""The stand-in's node keys are stellar-core's: StrKey seeds and keys, ed25519 from the seed."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests import standin_keys as keys

# A pair printed in the docs of a Stellar SDK (synesso.github.io/scala-stellar-sdk,
# "Key Pairs": "the following is a randomly generated account key pair").
DOCS_SEED = "SDHXK2UNHTXVW2MZSOVOPYUKVXD3PEVKMNQZZGPODQMR67YTKWMOC732"
DOCS_PUBLIC = "GD2HMF3BKITMXISCPTU7VVTFXDY5WSQK4QNIUATNCXVKBNWZP7FWZOXG"
# SDF's first testnet validator, as stellar-core's docs/stellar-core_testnet.cfg names it.
SDF_TESTNET_1 = "GDKXE2OZMJIPOSLNA6N6F2BVCI3O777I2OOC4BV7VOYUEHYX7RTRYA7Y"


def real_public_key(seed: bytes) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_the_public_key_of_a_seed_is_ed25519_as_libsodium_derives_it() -> None:
    # crypto_sign_seed_keypair (SecretKey::fromStrKeySeed) is RFC 8032 5.1.5.
    for _ in range(64):
        seed = os.urandom(32)
        assert keys.ed25519_public_key(seed) == real_public_key(seed)


def test_a_known_pair_from_stellar_docs() -> None:
    assert keys.public_key_of(DOCS_SEED) == DOCS_PUBLIC


def test_strkeys_have_their_version_byte_and_crc16() -> None:
    # StrKey.cpp: version << 3, payload, CRC16-XModem little-endian, base32.
    raw = base64.b32decode(SDF_TESTNET_1)
    assert raw[0] == 6 << 3
    assert keys.crc16_xmodem(raw[:-2]) == raw[-2] | raw[-1] << 8
    assert keys.crc16_xmodem(b"123456789") == 0x31C3  # the XModem check value
    payload = keys.public_key_bytes(SDF_TESTNET_1)
    assert keys.encode(keys.PUBLIC_KEY_VERSION, payload) == SDF_TESTNET_1
    seed = keys.random_seed()
    assert seed.startswith("S")
    assert len(seed) == 56
    assert keys.decode(seed)[0] == keys.SEED_VERSION


@pytest.mark.parametrize(
    "text",
    [
        "SDEMO",  # the demo's old placeholder
        "Sexec-de8cfa",  # the node tier's old `S<name>`
        DOCS_SEED[:-1] + ("A" if DOCS_SEED[-1] != "A" else "B"),  # a bad checksum
        DOCS_PUBLIC,  # a key is no seed
        DOCS_SEED.lower(),
        "",
    ],
)
def test_what_is_no_seed_is_an_invalid_seed(text: str) -> None:
    # SecretKey::fromStrKeySeed throws CryptoError("invalid seed").
    with pytest.raises(keys.InvalidStrKey, match=r"^invalid seed$"):
        keys.seed_bytes(text)


def test_a_seed_is_no_public_key() -> None:
    with pytest.raises(keys.InvalidStrKey, match=r"^bad public key$"):
        keys.public_key_bytes(DOCS_SEED)


def test_fresh_seeds_differ_and_derive_their_keys() -> None:
    seeds = {keys.random_seed() for _ in range(8)}
    assert len(seeds) == 8
    for seed in seeds:
        assert keys.public_key_of(seed) == keys.encode(
            keys.PUBLIC_KEY_VERSION, real_public_key(keys.seed_bytes(seed))
        )
