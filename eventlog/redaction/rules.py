"""The built-in redaction rules: which names are sensitive and which patterns inside a string hold a secret.

The rule book (every family, with examples and near misses) is docs/redaction.md. The pre-filter
(`eventlog.redaction.prefilter`) holds the literals these rules need; a rule added here needs its literal there, or
a shape in SHAPE_BYTES, so that the pre-filter never misses what the rule would change (a test walks both).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from eventlog.redaction.prefilter import KEY_QUALIFIERS

__all__ = ["AUTH_LINE", "KV", "MAX_NAME", "QUOTED", "SPACED", "STATED", "TOKENS", "USERINFO", "YAML",
           "builtin_sensitive", "contains", "looks_stated", "name_parts", "sensitive_in_field"]

MAX_NAME: Final = 256

_SINGLE: Final = frozenset({
    "token", "secret", "password", "passwd", "passphrase", "pass", "pwd", "session", "sessionid", "sessid",
    "signature", "credential", "credentials", "authorization", "cookie", "cookies", "apikey", "privatekey",
})
_SUFFIXES: Final = ("token", "secret", "password", "passwd", "apikey", "privatekey", "sessionid", "sessid")
_DESCRIPTORS: Final = frozenset({
    "type", "types", "endpoint", "url", "uri", "count", "counts", "limit", "limits", "usage",
})

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_parts(name: str) -> tuple[str, ...]:
    """Cut a name into lower-case word parts, the unit every name rule matches on."""
    if "%" in name:
        name = _PERCENT.sub(" ", name)
    return tuple(word.lower() for word in _WORD.findall(name))


def builtin_sensitive(parts: tuple[str, ...]) -> bool:
    """Whether the built-in name rules call a name of these parts sensitive."""
    if parts[-1] in _DESCRIPTORS:
        return False
    for i, part in enumerate(parts):
        if part == "key":
            if i and parts[i - 1] in KEY_QUALIFIERS:
                return True
        elif part in _SINGLE or part.endswith(_SUFFIXES):
            if part.endswith("pagetoken") or (part == "token" and i and parts[i - 1] == "page"):
                continue
            return True
    return False


def sensitive_in_field(name: str, parts: tuple[str, ...]) -> bool | None:
    """The rules that apply only to a ``name=value`` field inside a string; None where the general rules decide.

    ``sig`` (an Azure SAS signature, ``&sig=``) counts there when it ends the name; the plural ``cookies`` alone
    does not ("cookies=many" is prose more often than a field).
    """
    if parts == ("cookies",):
        return False
    if parts and parts[-1] == "sig" and name[-3:].lower() == "sig":
        return True
    return None


def contains(parts: tuple[str, ...], fragments: Sequence[tuple[str, ...]]) -> bool:
    """Whether `parts` holds one of `fragments` as consecutive parts."""
    for fragment in fragments:
        n = len(fragment)
        for i in range(len(parts) - n + 1):
            if parts[i:i + n] == fragment:
                return True
    return False


# Rules applied inside strings. Name and value character classes exclude what JSON escapes, so the
# pre-filter finds every name verbatim in the encoded bytes.
KV: Final = re.compile(
    r"""(?:^|(?<=[\s?&;#,'"(]))(?P<name>[^\x00-\x20=&?#;,'"()<>{}\\\x7f]{1,128})="""
    r"""(?:"(?P<dq>[^"\\\n]*)"|'(?P<sq>[^'\\\n]*)'|(?P<v>[^&#;?\s'"\\<>]*))""")
# name = value, name =value, name= value (ini files, shell, `aws_secret_access_key = ...`).
SPACED: Final = re.compile(
    r"""(?:^|(?<=[\s(,;=&?"']))(?P<name>[A-Za-z_][A-Za-z0-9_.-]{0,127})(?:[ \t]+=[ \t]*|=[ \t]+)"""
    r"""(?:"(?P<dq>[^"\\\n]*)"|'(?P<sq>[^'\\\n]*)'|(?P<v>[^\s'"\\&;,<>]+))""")
# YAML and .env style `name: value` on a line of its own, the value one word (so prose after a colon stays).
YAML: Final = re.compile(
    r"""(?m)^[ \t]*(?:-[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_.-]{0,127})[ \t]*:[ \t]+"""
    r"""(?:"(?P<dq>[^"\\\n]*)"|'(?P<sq>[^'\\\n]*)'|(?P<v>[^\s'"\\#]+))[ \t]*(?=\r?$|[ \t]#)""")
QUOTED: Final = re.compile(
    r"""(?P<q>["'])(?P<name>[^"'\\\n]{1,128})(?P=q)\s*:\s*"""
    r"""(?:"(?P<dq>(?:[^"\\\n]|\\.)*)"|'(?P<sq>(?:[^'\\\n]|\\.)*)')""")
AUTH_LINE: Final = re.compile(
    r"(?i)(?<![A-Za-z0-9-])(?:proxy-)?authorization[ \t]*:[ \t]*"
    r"(?:basic|bearer|digest|token|negotiate|ntlm|aws4-hmac-sha256)[ \t]+"
    r"""(?P<v>[^\s'"\\](?:[^\r\n'"\\]*[^\s'"\\])?)""")
# A password stated in prose, as people write it into an LLM prompt: "my password is hunter2".
STATED: Final = re.compile(
    r"(?i)(?<![a-z])(?:my|our|your|the|his|her|their)[ \t]+(?:[a-z]+[ \t]+)?"
    r"""(?:password|passphrase|passcode|passwd|pwd|auth[ _-]?token)[ \t]+(?:is|was|=)[ \t]*:?[ \t]*["'`]?"""
    r"""(?P<v>[^\s"'`]*[^\s"'`.,;:!?)])""")
USERINFO: Final = re.compile(
    r"""(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:'"\\]*:(?P<v>[^\s/?#@'"\\]+)@""")
_T = "A-Za-z0-9_-"  # token characters
TOKENS: Final = re.compile(
    r"-----BEGIN (?P<pl>(?:[A-Z0-9]+ )*)PRIVATE KEY(?P<pt>(?: BLOCK)?)-----"
    r"(?:[\s\S]{0,8192}?-----END (?P=pl)PRIVATE KEY(?P=pt)-----|[A-Za-z0-9+/=\s:,\\-]*)"
    r"|(?<![A-Za-z0-9_-])(?i:bearer)[ \t\r\n]+(?P<bearer>(?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{8,}=*)"
    r"|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"
    r"|(?<![A-Z0-9])(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"
    rf"|(?<![{_T}])sk-[{_T}]*T3BlbkFJ[{_T}]*"
    rf"|(?<![{_T}])sk-(?=[{_T}]*[0-9])[{_T}]{{20,}}"
    r"|(?<![A-Za-z0-9_-])[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9_]{36,}|github_pat_[A-Za-z0-9_]{22,})"
    rf"|(?<![{_T}])(?:gl(?:pat|dt|ft|soat|rt|ptt|cbt|imt|agent|oas)-|GR1348941)[{_T}]{{20,}}"
    r"|(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}"
    rf"|(?<![{_T}])SG\.[{_T}]{{16,}}\.[{_T}]{{16,}}"
    r"|(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36,}"
    rf"|(?<![{_T}])pypi-AgE[{_T}]{{50,}}"
    rf"|(?<![{_T}])sq0(?:csp|atp)-[{_T}]{{22,}}"
    r"|(?<![A-Za-z0-9])AKC[A-Za-z0-9]{10,}(?![A-Za-z0-9])"
    r"|(?<=hooks\.slack\.com/services/)T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"
    r"|(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35,}"
    r"|(?<![A-Za-z0-9_-])(?i:xox[abposr])-[A-Za-z0-9-]{10,}"
    # The shapes without a literal, as prefilter.SHAPE_BYTES reads them.
    rf"|(?<![{_T}])(?:(?:AC|SK)[a-z0-9]{{32}}|[0-9a-z]{{32}}-us[0-9]{{1,2}}|[0-9]{{8,10}}:[{_T}]{{35}}"
    rf"|[MNO][{_T}]{{23,25}}\.[{_T}]{{6}}\.[{_T}]{{27,}})(?![{_T}])")


def looks_stated(value: str) -> bool:
    """Whether a value after "my password is" looks like a password rather than a word ("required")."""
    return len(value) >= 12 or any(not c.isalpha() or c.isupper() for c in value)
