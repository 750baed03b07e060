"""The stand-in's reading of a stellar-core config file: the checks stellar-core v25.2.0 makes.

Standard library only (it ships beside `standin.py` in the stand-in image). `load()` follows
`Config::processConfig` of `src/main/Config.cpp` (v25.2.0) and raises ConfigError with the
text of the exception stellar-core throws (its callers wrap it in "Failed to parse 'FILE' :"):

- `NODE_SEED` is an `S...` StrKey, else "invalid seed" (`parseNodeID` ->
  `SecretKey::fromStrKeySeed`); a word after it names the node's key (`NODE_SEED="S... self"`).
- Names: `addValidatorName` gives each key one name ("naming node twice: NAME") and each
  name one key ("name already used: NAME"). Names come from NODE_SEED, `[QUORUM_SET]`
  entries (`"G... n1"`), `[[VALIDATORS]]` NAME and PREFERRED_PEER_KEYS; `$name` refers to one.
- `[[HOME_DOMAINS]]` (`parseDomainsQuality`) and `[[VALIDATORS]]` (`parseValidators`): each
  validator's quality comes from its domain or its own QUALITY; HIGH and CRITICAL need a
  HISTORY; an ADDRESS goes to PREFERRED_PEERS when the validator's HOME_DOMAIN is the node's
  NODE_HOME_DOMAIN, else to KNOWN_PEERS; a HISTORY is a readable archive named NAME.
- A validator (`NODE_IS_VALIDATOR=true`) with `[[VALIDATORS]]`, or without `[QUORUM_SET]`,
  is added to its validators as "self" (`addSelfToValidators`): it needs NODE_HOME_DOMAIN
  and a `[[HOME_DOMAINS]]` entry for it ("Validator configured with NODE_HOME_DOMAIN='D' but
  there is no matching HOME_DOMAINS").
- The quorum set: `[QUORUM_SET]` as written (`loadQset`: THRESHOLD_PERCENT, default 67,
  threshold `1 + (n * percent - 1) // 100`; VALIDATORS; every other key a nested set, at
  most 4 levels), logged "Using QUORUM_SET: ..." (with `[[VALIDATORS]]` too it must equal the
  generated one unless UNSAFE_QUORUM); else generated from the validators
  (`generateQuorumSet`, copied whole: sorted by quality then domain, one inner set per
  domain with a simple majority, each quality level an inner set of the next higher level
  with a 2/3 threshold (all of them at CRITICAL), HIGH and CRITICAL domains need 3
  validators, then `normalizeQSet`), logged "Generated QUORUM_SET: ...", with the checks
  that come with it: validators with archives must be v-blocking (else "SCP unsafe" unless
  UNSAFE_QUORUM), no key twice, one quality above LOW (`setValidatorWeightConfig`).
- `validateConfig`: some validator at all; FAILURE_SAFETY (-1: computed) below the size of
  the smallest v-blocking set ("FAILURE_SAFETY incompatible with QUORUM_SET"); without
  UNSAFE_QUORUM, FAILURE_SAFETY=0 or a threshold below the default is "SCP unsafe";
  `isQuorumSetSane` ("Invalid QUORUM_SET").
- `history_archive_problems()`: what `run` alone checks next (`setupApp` ->
  `HistoryArchiveManager::checkSensibleConfig`): with RUN_STANDALONE=false some archive
  must have a `get` ("History archives misconfigured.").

Not modelled: every other key and its type (stellar-core refuses unknown keys; the
stand-in's own `STANDIN_*` keys are not stellar-core's), the SURVEYOR_KEYS, the quorum
intersection checker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

try:  # imported as tests.standin_config
    from tests import standin_keys as keys
    from tests import standin_quorum as quorum
except ImportError:  # run from the stand-in image, beside them
    import standin_keys as keys  # type: ignore[no-redef]
    import standin_quorum as quorum  # type: ignore[no-redef]

QuorumSet = quorum.QuorumSet
QUALITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
LOW, MEDIUM, HIGH, CRITICAL = range(4)


class ConfigError(ValueError):
    """A config stellar-core refuses; the message is the text of its exception, `log`
    what it logged before it threw."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.log: list[tuple[str, str]] = []


@dataclass(frozen=True)
class Validator:
    """One `[[VALIDATORS]]` entry (or the node itself, "self")."""

    name: str
    home_domain: str
    quality: int
    key: str
    has_history: bool


@dataclass
class CoreConfig:
    """What the stand-in needs of a loaded config, and what loading it logged."""

    node_seed: str
    public_key: str
    node_is_validator: bool = False
    run_standalone: bool = False
    node_home_domain: str = ""
    unsafe_quorum: bool = False
    failure_safety: int = -1
    names: dict[str, str] = field(default_factory=dict)  # VALIDATOR_NAMES: key -> name
    quorum_set: QuorumSet = field(default_factory=lambda: QuorumSet(0))
    generated: bool = False
    history: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # get, put, mkdir
    preferred_peers: list[str] = field(default_factory=list)
    known_peers: list[str] = field(default_factory=list)
    preferred_peer_keys: set[str] = field(default_factory=set)
    log: list[tuple[str, str]] = field(default_factory=list)  # (level, text)

    def short(self, key: str) -> str:
        """`Config::toShortString`: the key's name, else its first 5 characters."""
        return self.names.get(key, key[:5])


# reading values (`readString`, `readBool`, `readInt`, `readArray`)


def _string(config: Mapping[str, Any], key: str, default: str = "") -> str:
    value = config.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"invalid '{key}'")
    return value


def _bool(config: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"invalid '{key}'")
    return value


def _int(config: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"invalid '{key}'")
    if not low <= value <= high:
        raise ConfigError(f"bad '{key}'")
    return value


def _strings(config: Mapping[str, Any], key: str) -> list[str]:
    value = config.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"'{key}' must be an array")
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"invalid element of '{key}'")
    return list(value)


class _Loader:
    """`Config::processConfig` for one config table."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.t = table
        self.names: dict[str, str] = {}
        self.history: dict[str, tuple[str, str, str]] = {}
        self.log: list[tuple[str, str]] = []

    # names and keys

    def add_name(self, key: str, name: str) -> None:
        """`Config::addValidatorName`."""
        if name in self.names.values():
            raise ConfigError(f"name already used: {name}")
        if key in self.names:
            raise ConfigError(f"naming node twice: {name}")
        self.names[key] = name

    def node_id(self, text: str, *, seed: bool = False) -> str:
        """`Config::parseNodeID`: the `G...` key of a key, `$name` or (seed) an `S...` seed."""
        if len(text) < 2:
            raise ConfigError(f"invalid key: {text}")
        if text[0] == "$":
            if seed:
                raise ConfigError(f"aliases only store public keys: {text}")
            found = [k for k, n in self.names.items() if n == text[1:]]
            if not found:
                raise ConfigError(f"unknown key in config: {text}")
            return found[0]
        words = text.split()
        first = words[0] if words else ""
        try:
            key = keys.public_key_of(first) if seed else _checked_key(first)
        except keys.InvalidStrKey as exc:
            raise ConfigError(str(exc)) from None
        if len(words) > 1:
            self.add_name(key, words[1])
        return key

    def add_archive(self, name: str, get: str, put: str, mkdir: str) -> None:
        if name in self.history:
            raise ConfigError(f"Conflicting archive name '{name}'")
        self.history[name] = (get, put, mkdir)

    # tables

    def home_domains(self) -> dict[str, int]:
        """`Config::parseDomainsQuality`."""
        raw = self.t.get("HOME_DOMAINS")
        if raw is None:
            return {}
        if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
            raise ConfigError("malformed HOME_DOMAINS")
        found: dict[str, int] = {}
        for entry in raw:
            domain, quality = "", None
            for k in entry:
                if k == "QUALITY":
                    quality = _quality(_string(entry, k))
                elif k == "HOME_DOMAIN":
                    domain = _string(entry, k)
                else:
                    raise ConfigError(f"Unknown field '{k}' in HOME_DOMAINS")
            if quality is None or not domain:
                raise ConfigError(f"Malformed HOME_DOMAINS '{domain}'")
            if domain in found:
                raise ConfigError(f"Malformed HOME_DOMAINS: duplicate '{domain}'")
            found[domain] = quality
        return found

    def archives(self) -> None:
        """The `HISTORY` item: `[HISTORY.name]` tables of get/put/mkdir commands."""
        raw = self.t.get("HISTORY")
        if raw is None:
            return
        if not isinstance(raw, dict):
            raise ConfigError("incomplete HISTORY block")
        for name, archive in raw.items():
            if not isinstance(archive, dict):
                raise ConfigError("malformed HISTORY config block")
            commands = {"get": "", "put": "", "mkdir": ""}
            for k, v in archive.items():
                if k not in commands:
                    raise ConfigError(
                        f"Unknown HISTORY-table entry: '{k}', within [HISTORY.{name}]"
                    )
                commands[k] = str(v)
            self.add_archive(name, commands["get"], commands["put"], commands["mkdir"])

    def validators(
        self, domains: Mapping[str, int], home: str, preferred: list[str], known: list[str]
    ) -> list[Validator]:
        """`Config::parseValidators`."""
        raw = self.t.get("VALIDATORS")
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
            raise ConfigError("malformed VALIDATORS")
        found = []
        for entry in raw:
            fields = {"NAME": "", "HOME_DOMAIN": "", "PUBLIC_KEY": "", "ADDRESS": "", "HISTORY": ""}
            quality = None
            for k in entry:
                if k == "QUALITY":
                    quality = _quality(_string(entry, k))
                elif k in fields:
                    fields[k] = _string(entry, k)
                else:
                    raise ConfigError(f"malformed VALIDATORS entry, unknown element '{k}'")
            name, domain, key = fields["NAME"], fields["HOME_DOMAIN"], fields["PUBLIC_KEY"]
            if not name:
                raise ConfigError("malformed VALIDATORS entry: missing 'NAME'")
            if not key or not domain:
                raise ConfigError(f"malformed VALIDATORS entry '{name}'")
            if domain in domains:
                if quality is not None:
                    raise ConfigError(
                        f"malformed VALIDATORS entry '{name}': quality already defined in "
                        f"home domain '{domain}'"
                    )
                quality = domains[domain]
            if quality is None:
                raise ConfigError(f"malformed VALIDATORS entry '{name}' (missing quality)")
            self.add_name(key, name)
            try:
                _checked_key(key)
            except keys.InvalidStrKey as exc:
                raise ConfigError(str(exc)) from None
            if fields["HISTORY"]:
                self.add_archive(name, fields["HISTORY"], "", "")
            if quality >= HIGH and not fields["HISTORY"]:
                raise ConfigError(
                    f"malformed VALIDATORS entry '{name}' (critical and high quality must "
                    "have an archive)"
                )
            if fields["ADDRESS"]:
                (preferred if home == domain else known).append(fields["ADDRESS"])
            found.append(Validator(name, domain, quality, key, bool(fields["HISTORY"])))
        return found

    def quorum_set(self, group: Any, level: int) -> QuorumSet:
        """`Config::loadQset`."""
        if not isinstance(group, dict):
            raise ConfigError("invalid entry in quorum set definition")
        if level > quorum.MAXIMUM_QUORUM_NESTING_LEVEL:
            raise ConfigError("too many levels in quorum set")
        percent = 67
        validators: list[str] = []
        inner: list[QuorumSet] = []
        for k, v in group.items():
            if k == "THRESHOLD_PERCENT":
                if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= 100:
                    raise ConfigError("invalid THRESHOLD_PERCENT")
                percent = v
            elif k == "VALIDATORS":
                validators += [self.node_id(s) for s in _strings(group, k)]
            else:
                try:
                    if not isinstance(v, dict):
                        raise ConfigError("invalid quorum set, should be a group")
                    inner.append(self.quorum_set(v, level + 1))
                except ConfigError as exc:
                    raise ConfigError(f"{exc} while parsing '{k}'") from None
        if not validators and not inner:
            raise ConfigError("invalid quorum set definition")
        size = len(validators) + len(inner)
        return QuorumSet(quorum.threshold(size, percent), tuple(validators), tuple(inner))


def _checked_key(key: str) -> str:
    keys.public_key_bytes(key)
    return key


def _quality(text: str) -> int:
    if text not in QUALITIES:
        raise ConfigError(f"Unknown QUALITY '{text}'")
    return QUALITIES.index(text)


def load(table: Mapping[str, Any]) -> CoreConfig:
    """`Config::processConfig` on a parsed config file; ConfigError as stellar-core throws."""
    ld = _Loader(table)
    try:
        return _load(table, ld)
    except ConfigError as exc:
        exc.log = ld.log
        raise


def _load(table: Mapping[str, Any], ld: _Loader) -> CoreConfig:
    domains = ld.home_domains()
    seed_text = _string(table, "NODE_SEED", "")
    if "NODE_SEED" in table:
        public = ld.node_id(seed_text, seed=True)
        seed = seed_text.split()[0]
    else:  # Config(): NODE_SEED(SecretKey::random())
        seed = keys.random_seed()
        public = keys.public_key_of(seed)
    ld.archives()
    cfg = CoreConfig(
        node_seed=seed,
        public_key=public,
        node_is_validator=_bool(table, "NODE_IS_VALIDATOR"),
        run_standalone=_bool(table, "RUN_STANDALONE"),
        node_home_domain=_string(table, "NODE_HOME_DOMAIN"),
        unsafe_quorum=_bool(table, "UNSAFE_QUORUM"),
        failure_safety=_int(table, "FAILURE_SAFETY", -1, -1, 2**31 - 2),
        preferred_peers=_strings(table, "PREFERRED_PEERS"),
        known_peers=_strings(table, "KNOWN_PEERS"),
    )
    validators = ld.validators(domains, cfg.node_home_domain, cfg.preferred_peers, cfg.known_peers)
    # "if only QUORUM_SET is specified: we don't populate validators at all"
    if cfg.node_is_validator and not (not validators and "QUORUM_SET" in table):
        validators.append(_self_entry(cfg, domains))
    cfg.preferred_peer_keys = {ld.node_id(s) for s in _strings(table, "PREFERRED_PEER_KEYS")}
    cfg.names = ld.names
    auto = generate_quorum_set(validators)
    auto_text = quorum.text(auto, cfg.short)
    if "QUORUM_SET" in table:
        cfg.quorum_set = ld.quorum_set(table["QUORUM_SET"], 0)
        written = quorum.text(cfg.quorum_set, cfg.short)
        ld.log.append(("INFO", f"Using QUORUM_SET: {written}"))
        if written != auto_text and validators:
            ld.log.append(("WARNING", f"Differs from generated: {auto_text}"))
            if not cfg.unsafe_quorum:
                raise ConfigError("SCP unsafe")
        level = quorum.BYZANTINE_FAULT_TOLERANCE
    else:
        ld.log.append(("INFO", f"Generated QUORUM_SET: {auto_text}"))
        cfg.quorum_set, cfg.generated = auto, True
        _archives_v_blocking(cfg, validators, ld.log)
        _weights(cfg, validators)
        several = len({v.home_domain for v in validators}) > 1
        level = quorum.BYZANTINE_FAULT_TOLERANCE if several else quorum.SIMPLE_MAJORITY
    cfg.history, cfg.log = ld.history, ld.log
    _validate(cfg, level)
    return cfg


def _self_entry(cfg: CoreConfig, domains: Mapping[str, int]) -> Validator:
    """`Config::addSelfToValidators`."""
    if not cfg.node_home_domain:
        raise ConfigError("NODE_HOME_DOMAIN must be set")
    if cfg.node_home_domain not in domains:
        raise ConfigError(
            f"Validator configured with NODE_HOME_DOMAIN='{cfg.node_home_domain}' "
            "but there is no matching HOME_DOMAINS"
        )
    return Validator(
        "self", cfg.node_home_domain, domains[cfg.node_home_domain], cfg.public_key, False
    )


def _archives_v_blocking(
    cfg: CoreConfig, validators: list[Validator], log: list[tuple[str, str]]
) -> None:
    """`Config::verifyHistoryValidatorsBlocking`."""
    archives = {v.key for v in validators if v.has_history}
    if not quorum.v_blocking(cfg.quorum_set, archives):
        log.append(("WARNING", "Quorum can be reached without validators with an archive"))
        if not cfg.unsafe_quorum:
            raise ConfigError("SCP unsafe")


def _weights(cfg: CoreConfig, validators: list[Validator]) -> None:
    """The refusals of `Config::setValidatorWeightConfig` (validators only)."""
    if not cfg.node_is_validator:
        return
    seen: set[str] = set()
    for v in validators:
        if v.key in seen:
            raise ConfigError(f"Duplicate validator entry for '{v.key}'")
        seen.add(v.key)
    if max((v.quality for v in validators), default=LOW) == LOW:
        raise ConfigError("At least one validator must have a quality level higher than LOW")


def _validate(cfg: CoreConfig, level: str) -> None:
    """`Config::validateConfig`."""
    qset = cfg.quorum_set
    nodes = qset.nodes()
    if not nodes:
        raise ConfigError("no validators defined in VALIDATORS/QUORUM_SET")
    blocking = quorum.closest_v_blocking(qset, nodes)
    min_size = quorum.default_threshold(qset, level)
    if cfg.failure_safety == -1:
        cfg.failure_safety = qset.size - min_size
        cfg.log.append(
            ("INFO", f"Assigning calculated value of {cfg.failure_safety} to FAILURE_SAFETY")
        )
    try:
        if cfg.failure_safety >= len(blocking):
            cfg.log.append(
                (
                    "ERROR",
                    "Not enough nodes / thresholds too strict in your Quorum "
                    "set to ensure your desired level of FAILURE_SAFETY. Reduce "
                    "FAILURE_SAFETY or fix quorum set",
                )
            )
            raise ConfigError("FAILURE_SAFETY incompatible with QUORUM_SET")
        if not cfg.unsafe_quorum and (cfg.failure_safety == 0 or qset.threshold < min_size):
            raise ConfigError("SCP unsafe")
    except ConfigError:
        cfg.log.append(("INFO", f" Current QUORUM_SET breaks with {len(blocking)} failures"))
        raise
    problem = quorum.sanity_problem(qset, extra_checks=not cfg.unsafe_quorum)
    if problem is not None:
        cfg.log.append(("FATAL", f"Invalid QUORUM_SET: {problem}"))
        raise ConfigError("Invalid QUORUM_SET")


def history_archive_problems(cfg: CoreConfig) -> list[tuple[str, str]]:
    """`HistoryArchiveManager::checkSensibleConfig`: its log lines (level, text) if the
    archives are misconfigured (then `run` stops), else []."""
    bad: list[tuple[str, str]] = []
    readable = False
    for name, (get, put, _) in cfg.history.items():
        if get:
            readable = True
        elif put:
            bad.append(
                ("FATAL", f"Archive '{name}' has 'put' but no 'get' command, will be unwritable")
            )
        else:
            bad.append(
                ("FATAL", f"Archive '{name}' has no 'get' or 'put' command, will not function")
            )
    if not readable and not cfg.run_standalone:
        bad.append(("FATAL", "No readable archives configured, catchup will fail."))
    if bad:
        bad.append(("ERROR", "History archives misconfigured."))
    return bad


# The generated quorum set


def generate_quorum_set(validators: list[Validator]) -> QuorumSet:
    """`Config::generateQuorumSet`: by quality (highest first) then domain, normalized."""
    todo = sorted(validators, key=lambda v: (-v.quality, v.home_domain))
    return quorum.normalize(_generate(todo, 0, CRITICAL))


def _generate(todo: list[Validator], start: int, quality: int) -> QuorumSet:
    """`Config::generateQuorumSetHelper`."""
    i = start
    inner: list[QuorumSet] = []
    while i < len(todo) and todo[i].quality == quality:
        first, j, members = todo[i], i, []
        while j < len(todo) and todo[j].home_domain == first.home_domain:
            if todo[j].quality != first.quality:
                raise ConfigError(
                    f"Validators '{first.name}' and '{todo[j].name}' must have same quality"
                )
            members.append(todo[j].key)
            j += 1
        if len(members) < 3 and first.quality >= HIGH:
            raise ConfigError(
                f"Critical and High quality validators for '{first.home_domain}' must have "
                "redundancy of at least 3"
            )
        majority = quorum.default_threshold(QuorumSet(0, tuple(members)), quorum.SIMPLE_MAJORITY)
        inner.append(QuorumSet(majority, tuple(members)))
        i = j
    if i < len(todo):
        if todo[i].quality > quality:
            raise ConfigError(f"invalid validator quality for '{todo[i].name}' (must be ascending)")
        inner.append(_generate(todo, i, todo[i].quality))
    level = quorum.ALL_REQUIRED if quality == CRITICAL else quorum.BYZANTINE_FAULT_TOLERANCE
    return QuorumSet(
        quorum.default_threshold(QuorumSet(0, (), tuple(inner)), level), (), tuple(inner)
    )
