"""Make the key qlrf-run's workers authenticate their workflows' messages with
(QLRF_INTERNAL_KEY_FILE), once: every worker replica reads the same file.

Run by the compose file's one-shot `qlrf-internal-key` service into a volume the
workers mount read-only; a key already there is kept, since runs still open were
authenticated with it. Usage: make-internal-key.py DIRECTORY [UID]
"""

import os
import secrets
import sys


def main(directory: str, owner: int | None) -> None:
    path = os.path.join(directory, "internal.key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    except FileExistsError:
        print(f"{path}: kept the key that is there")
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        print(f"{path}: made a new key")
    if owner is not None and os.geteuid() == 0:
        os.chown(path, owner, owner)  # the workers' user, who alone may read it
    os.chmod(path, 0o400)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: make-internal-key.py DIRECTORY [UID]")
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else None)
