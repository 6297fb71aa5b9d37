"""Real SSH hosts on this machine, for the examples and the tests: OpenSSH `sshd`s on
127.0.0.1, each with its own port, host key and home, all accepting one generated
client key.

    scripts/testhosts start [--count 3] [--dir DIR]   # prints what to export
    scripts/testhosts stop [--dir DIR]

`start` writes into DIR:
- `inventory.json`: [{"name", "address", "port", "user", "home", "sshd_config",
  "certificate"}] (a `foreach` list; each host has a TLS certificate of its own);
- `hosts.txt`: one `address:port` per line;
- `known_hosts`: each host's key, for `known_hosts:` of an `ssh` step;
- `client_key` (and `.pub`): the key every host accepts;
- `secrets`: `TESTHOSTS_SSH_KEY=<the key, base64>`, a file for QLRF_SECRETS_FILE;
- `env`: the exports that point qlrf-run at all of the above.

Hosts log in the user who started them (root in CI), with the client key only.
sshd comes from the system packages (`openssh-server`); scripts/dev-setup installs
it when it runs as root.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from runner.errors import QlrfError

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
SECRET_NAME = "TESTHOSTS_SSH_KEY"
READY_SECONDS = 20.0
CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {home}/ssh_host_ed25519_key
PidFile {home}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
SetEnv QLRF_TESTHOST={name} HOME={home}
"""


CERT_DAYS = 90  # each host's TLS certificate, for the compliance example to check


@dataclass
class Host:
    name: str
    address: str
    port: int
    user: str
    home: str
    sshd_config: str  # what `sshd -T -f` reads on this host
    certificate: str  # a TLS certificate of the host, valid CERT_DAYS from now


def sshd_path() -> str:
    found = shutil.which("sshd") or next((p for p in SSHD_PATHS if os.path.exists(p)), None)
    if found is None:
        raise QlrfError(
            "sshd is not installed: install the openssh-server package "
            "(apt-get install openssh-server; scripts/dev-setup does it when run as root)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: Path, comment: str) -> None:
    if path.exists():
        path.unlink()
        path.with_suffix(".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _certificate(path: Path, name: str) -> None:
    """A self-signed certificate for `name`, valid for CERT_DAYS."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.testhosts.local")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CERT_DAYS))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def answers(port: int) -> bool:
    """The port answers with an SSH banner."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
        sock.settimeout(1)
        return sock.recv(4).startswith(b"SSH-")
    return False


def start(folder: Path, count: int) -> list[Host]:
    """Start `count` sshd instances (stopping any this folder had), and write the files."""
    sshd = sshd_path()
    stop(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd checks its privilege-separation dir
    key = folder / "client_key"
    _keygen(key, "qlrf-testhosts")
    (folder / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    user = getpass.getuser()
    hosts, known = [], []
    for i in range(1, count + 1):
        name = f"host-{i}"
        home = folder / name
        home.mkdir(exist_ok=True)
        _keygen(home / "ssh_host_ed25519_key", name)
        port = free_port()
        config = home / "sshd_config"
        config.write_text(CONFIG.format(port=port, home=home, root=folder, name=name))
        with (home / "sshd.log").open("ab") as output:
            subprocess.Popen(
                [sshd, "-f", str(config), "-E", str(home / "sshd.log")],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
        certificate = home / "tls.crt"
        _certificate(certificate, name)
        hosts.append(Host(name, "127.0.0.1", port, user, str(home), str(config), str(certificate)))
        public = (home / "ssh_host_ed25519_key.pub").read_text().split()
        known.append(f"[127.0.0.1]:{port} {public[0]} {public[1]}")
    deadline = time.monotonic() + READY_SECONDS
    for host in hosts:
        while not answers(host.port):
            if time.monotonic() > deadline:
                stop(folder)
                log = Path(host.home) / "sshd.log"
                raise QlrfError(f"sshd of {host.name} did not start: {log.read_text()[-500:]}")
            time.sleep(0.05)
    (folder / "inventory.json").write_text(json.dumps([asdict(h) for h in hosts], indent=2))
    (folder / "hosts.txt").write_text("".join(f"{h.address}:{h.port}\n" for h in hosts))
    (folder / "known_hosts").write_text("\n".join(known) + "\n")
    encoded = base64.b64encode(key.read_bytes()).decode()
    secrets = folder / "secrets"
    secrets.write_text(f"{SECRET_NAME}={encoded}\n")
    secrets.chmod(0o600)
    (folder / "env").write_text(
        f"export QLRF_SECRETS_FILE={secrets}\nexport QLRF_TESTHOSTS={folder}\n"
    )
    return hosts


def stop(folder: Path) -> int:
    """Stop the sshd instances started in `folder`; how many were running."""
    stopped = 0
    for pidfile in folder.glob("host-*/sshd.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            stopped += 1
        pidfile.unlink(missing_ok=True)
    return stopped


def default_folder() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "qlrf-run" / "testhosts"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/testhosts", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    begin = sub.add_parser("start", help="start the hosts and write their files")
    begin.add_argument("--count", type=int, default=3)
    begin.add_argument("--dir", type=Path, default=default_folder())
    end = sub.add_parser("stop", help="stop the hosts")
    end.add_argument("--dir", type=Path, default=default_folder())
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            if not 0 < args.count <= 100:
                raise QlrfError("--count: between 1 and 100 hosts")
            hosts = start(args.dir.resolve(), args.count)
            for host in hosts:
                print(f"{host.name}: {host.user}@{host.address} port {host.port}")
            print(f"inventory: {args.dir.resolve() / 'inventory.json'}")
            print(f"point qlrf-run at them: . {args.dir.resolve() / 'env'}")
        else:
            print(f"stopped {stop(args.dir.resolve())} host(s)")
    except (QlrfError, OSError, subprocess.CalledProcessError) as exc:
        print(f"testhosts: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
