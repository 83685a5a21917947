"""A real OpenLDAP server (slapd) with users in groups for each KubeDoor role."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port, require_binary, stop_process, wait_for_port

BASE_DN = "dc=kubedoor,dc=test"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "ldap-admin-secret"  # test-only directory, lives in a temporary folder
USERS = {
    # uid: (password, groups)
    "alice": ("alice-pass-1", ["kd-viewers"]),
    "bob": ("bob-pass-22", ["kd-operators", "developers"]),
    "carol": ("carol-pass-333", ["kd-admins"]),
    "dave": ("dave-pass-4444", ["developers"]),
    "erin": ("erin-pass-55555", ["team-shop", "developers"]),  # no role group: scopes only
}
GROUPS = ["kd-viewers", "kd-operators", "kd-admins", "developers", "team-shop"]


@dataclass(frozen=True)
class Slapd:
    uri: str
    base_dn: str

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},ou=groups,{self.base_dn}"

    def env(self) -> dict[str, str]:
        """``AUTH_LDAP_*`` variables as an operator would set them for this directory."""
        return {
            "AUTH_LDAP_SERVER_URI": self.uri,
            "AUTH_LDAP_BIND_DN": ADMIN_DN,
            "AUTH_LDAP_BIND_PASSWORD": ADMIN_PASSWORD,
            "AUTH_LDAP_USER_SEARCH_BASE": f"ou=people,{self.base_dn}",
            "AUTH_LDAP_GROUP_SEARCH_BASE": f"ou=groups,{self.base_dn}",
            "AUTH_LDAP_VIEWER_GROUP_DN": self.group_dn("kd-viewers"),
            "AUTH_LDAP_OPERATOR_GROUP_DN": self.group_dn("kd-operators"),
            "AUTH_LDAP_ADMIN_GROUP_DN": self.group_dn("kd-admins"),
        }


def _ldif() -> str:
    entries = [
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: kubedoor\no: KubeDoor test\n",
        f"dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    for uid, (password, _groups) in USERS.items():
        entries.append(
            f"dn: uid={uid},ou=people,{BASE_DN}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid.title()}\n"
            f"sn: {uid.title()}\ngivenName: {uid.title()}\nmail: {uid}@kubedoor.test\nuserPassword: {password}\n"
        )
    for group in GROUPS:
        members = [f"member: uid={uid},ou=people,{BASE_DN}" for uid, (_p, gs) in USERS.items() if group in gs]
        entries.append(
            f"dn: cn={group},ou=groups,{BASE_DN}\nobjectClass: groupOfNames\ncn: {group}\n" + "\n".join(members) + "\n"
        )
    return "\n".join(entries)


def _config(workdir: Path) -> str:
    schema = Path("/etc/ldap/schema")
    return "\n".join(
        [
            *(f"include {schema / name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")),
            f"pidfile {workdir / 'slapd.pid'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            "database mdb",
            f"suffix {BASE_DN}",
            f"rootdn {ADMIN_DN}",
            f"rootpw {ADMIN_PASSWORD}",
            f"directory {workdir / 'data'}",
            "maxsize 104857600",
            "access to attrs=userPassword by anonymous auth by self read by * none",
            "access to * by * read",
            "",
        ]
    )


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    binary = require_binary("/usr/sbin/slapd")
    slapadd = require_binary("/usr/sbin/slapadd")
    workdir = tmp_path_factory.mktemp("slapd")
    (workdir / "data").mkdir()
    conf = workdir / "slapd.conf"
    conf.write_text(_config(workdir))
    (workdir / "seed.ldif").write_text(_ldif())
    subprocess.run([slapadd, "-f", str(conf), "-l", str(workdir / "seed.ldif")], check=True, capture_output=True)
    port = free_port()
    uri = f"ldap://127.0.0.1:{port}/"
    process = subprocess.Popen(
        [binary, "-d", "0", "-f", str(conf), "-h", uri], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(port, process=process)
        yield Slapd(uri=uri, base_dn=BASE_DN)
    finally:
        stop_process(process)
