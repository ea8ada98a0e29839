"""``lgsp pki init|issue``: the demo PKI: root CA, participant keys and certificates, trust."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.demo import pki
from gateway.signatures.binding import fingerprint


def register(commands: argparse._SubParsersAction[Any]) -> None:
    group = commands.add_parser("pki", help="demo PKI: root CA and participant certificates")
    sub = group.add_subparsers(dest="pki_command", required=True, parser_class=type(group))

    init = sub.add_parser("init", help="create a root CA and the demo participants in DIR")
    init.add_argument("dir", type=Path, metavar="DIR", help="the PKI directory (created)")
    init.set_defaults(handler=_init)

    issue = sub.add_parser("issue", help="issue a key and certificate for one more participant")
    issue.add_argument(
        "dir", type=Path, metavar="DIR", help="a PKI directory `lgsp pki init` wrote"
    )
    issue.add_argument("organ_id", metavar="ORGANID", help="the participant's OrganId")
    issue.add_argument("--name", help="the participant's name (certificate subject)")
    issue.set_defaults(handler=_issue)


def _init(args: argparse.Namespace) -> int:
    pki.init_pki(args.dir)
    print(f"root CA and trust store in {args.dir}")
    for participant in pki.DEMO_PARTICIPANTS:
        ident = pki.load_identity(args.dir, participant.organ_id)
        fp = fingerprint(ident.certificate)
        print(f"  {participant.organ_id:<16} {participant.name}  sha256:{fp}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    ident = pki.issue(args.dir, args.organ_id, name=args.name)
    print(f"issued {args.organ_id}: {ident.certificate.subject.rfc4514_string()}")
    print(f"  sha256:{fingerprint(ident.certificate)}")
    return 0
