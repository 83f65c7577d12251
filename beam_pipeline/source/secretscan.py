"""Secrets stay out of an index by default: files named as secrets are, and files holding one.

An index is often shared (a CI artifact, a team's bucket), and whoever can read it can read
every chunk. So unless the run asks for them (`--include-secrets`), two kinds of file are
skipped and counted as `secret`, before anything of them is read into a row, the lexical
index, the journal or a spill file:

- by name, in the walk (`SECRET_FILES`, gitignore syntax): environment files, private keys and
  certificates' keys, keystores, and the credential files of common tools;
- by content, where the file is read (`holds_secret`): a private key block or a token of a
  known format. The patterns are those of detect-secrets' plugins (Yelp, Apache-2.0:
  PrivateKeyDetector, AWSKeyDetector, GitHubTokenDetector, SlackDetector, StripeDetector,
  SendGridDetector, OpenAIDetector) and gitleaks' rules (MIT: github-fine-grained-pat,
  gitlab-pat, gcp-api-key, anthropic-api-key, npm-access-token, pypi-upload-token), kept
  without their keyword heuristics, which flag ordinary code. A match that holds `EXAMPLE`
  (AWS's documented AKIAIOSFODNN7EXAMPLE) is documentation, not a secret.

Matching runs in RE2 (linear time: a hostile file cannot make it slow).

Example::

    holds_secret("aws_key = 'AKIA" + "Z" * 16 + "'")   # 'aws-access-key-id'
    holds_secret("def read_config(path): ...")         # None
"""

from __future__ import annotations

from functools import cache

SECRET_FILES: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "credentials",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".git-credentials",
    ".htpasswd",
)

_PATTERNS = {
    "private-key": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    "aws-access-key-id": r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
    "github-token": r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_\w{82}\b",
    "gitlab-token": r"\bglpat-[\w-]{20}\b",
    "slack-token": r"\bxox[abposr]-(?:\d+-)+[a-z0-9]+|"
                   r"https://hooks\.slack\.com/services/T\w+/B\w+/\w+",
    "stripe-key": r"\b[rs]k_live_[0-9a-zA-Z]{24}",
    "sendgrid-key": r"\bSG\.[\w-]{22}\.[\w-]{43}\b",
    "google-api-key": r"\bAIza[\w-]{35}\b",
    "openai-key": r"\bsk-[\w-]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",
    "anthropic-key": r"\bsk-ant-(?:api03|admin01)-[\w-]{93}AA\b",
    "npm-token": r"\bnpm_[A-Za-z0-9]{36}\b",
    "pypi-token": r"\bpypi-AgEIcHlwaS5vcmc[\w-]{50,}",
}


@cache
def _any_secret():
    import re2  # compiled where files are read, not where the walk or a search imports this

    return re2.compile("|".join(f"(?P<{name.replace('-', '_')}>{pattern})"
                                for name, pattern in _PATTERNS.items()))


def holds_secret(text: str) -> str | None:
    """The name of the first secret pattern `text` holds (documentation examples aside)."""
    for found in _any_secret().finditer(text):
        if "EXAMPLE" not in found.group(0).upper():
            return found.lastgroup.replace("_", "-")
    return None
