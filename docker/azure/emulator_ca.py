"""`python emulator_ca.py URL BUNDLE [WAIT]`: write BUNDLE, this machine's CA bundle plus the
PEM certificate served at URL (the Cosmos DB emulator's own, self-signed), for SSL_CERT_FILE.

The compose stack runs it as the emulator starts: the emulator's image has no curl or wget
for a healthcheck, so this waits (up to WAIT seconds, 0 by default) until the emulator
serves its certificate, which it does once it is up; the services start after it, and
verify the emulator as they verify any server. The certificate is fetched without
verification: it is what trust starts from, read from the emulator on the stack's own
network. Exits 1 with one line on stderr when no certificate came within WAIT.
"""

from __future__ import annotations

import ssl
import sys
import time
import urllib.request
from pathlib import Path

TIMEOUT = 30.0  # seconds, per request
RETRY_EVERY = 1.0  # seconds


def system_bundle() -> Path:
    """The CA bundle OpenSSL trusts by default here."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise OSError("no system CA bundle found (install the ca-certificates package)")


def fetch_certificate(url: str) -> str:
    """The PEM certificate at `url`; ValueError if the answer is not one."""
    unverified = ssl._create_unverified_context()  # noqa: S323 - trust starts here (see above)
    with urllib.request.urlopen(url, timeout=TIMEOUT, context=unverified) as response:  # noqa: S310 - https only
        pem: str = response.read().decode("ascii", errors="replace").strip()
    ssl.PEM_cert_to_DER_cert(pem)  # ValueError unless it is exactly one PEM certificate
    return pem + "\n"


def await_certificate(url: str, wait: float) -> str:
    """The certificate at `url`, asked for again until it comes or `wait` seconds pass."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return fetch_certificate(url)
        except (OSError, ValueError):
            if time.monotonic() + RETRY_EVERY > deadline:
                raise
        time.sleep(RETRY_EVERY)


def write_bundle(url: str, bundle: Path, wait: float = 0.0) -> None:
    """BUNDLE = the system's CAs + the certificate at `url`, replaced in one rename."""
    if not url.startswith("https://"):
        raise ValueError(f"{url} is not an https:// address")
    system = system_bundle().read_text(encoding="ascii").rstrip("\n")
    content = f"{system}\n{await_certificate(url, wait)}"
    partial = bundle.with_name(bundle.name + ".partial")
    partial.write_text(content, encoding="ascii")
    partial.chmod(0o644)
    partial.replace(bundle)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not all(part.isdigit() for part in argv[2:]):
        print("usage: emulator_ca.py URL BUNDLE [WAIT_SECONDS]", file=sys.stderr)
        return 2
    url, bundle = argv[:2]
    wait = float(argv[2]) if argv[2:] else 0.0
    try:
        write_bundle(url, Path(bundle), wait)
    except (OSError, ValueError) as error:
        print(f"error: the Cosmos DB emulator's certificate from {url}: {error}", file=sys.stderr)
        return 1
    print(f"wrote {bundle}: the system CAs and the certificate from {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
