"""The `stellar-peers` command: serve, inject, explain, certs, check, status, link, unlink.

Each subcommand checks its flags and builds `Settings` before starting
anything, then hands over to the module that owns the work.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from webhook import __version__
from webhook.settings import Settings, SettingsError, add_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stellar-peers",
        description="Peer discovery for Stellar validators on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the webhook, peer watcher and reload controller")
    serve.add_argument(
        "--local",
        action="store_true",
        help="register a webhook configuration that points at this process on 127.0.0.1, "
        "with a certificate made on the spot (for the local control plane)",
    )
    add_arguments(serve)

    inject = sub.add_parser("inject", help="print manifests as the webhook would mutate them")
    inject.add_argument("-f", "--filename", required=True, help="YAML file, or - for stdin")
    add_arguments(inject)

    explain = sub.add_parser("explain", help="say whether and why pods would be injected")
    explain.add_argument("-f", "--filename", help="YAML file, or - for stdin")
    explain.add_argument("pod", nargs="?", help="a live pod's name (with -n)")
    explain.add_argument(
        "-n", "--pod-namespace", default="default", help="the live pod's namespace"
    )
    add_arguments(explain)

    certs = sub.add_parser("certs", help="make or install the webhook's certificates")
    certs.add_argument(
        "action",
        choices=["generate", "install"],
        help="generate: write files to --out; install: into the Secret and caBundle",
    )
    certs.add_argument("--out", default="certs-out", help="folder for ca.crt, tls.crt, tls.key")
    certs.add_argument("--dns", action="append", default=[], help="extra DNS name (repeatable)")
    certs.add_argument("--ip", action="append", default=[], help="IP address SAN (repeatable)")
    add_arguments(certs)

    check = sub.add_parser("check", help="post-install self-test against the cluster")
    add_arguments(check)

    status = sub.add_parser(
        "status", help="per validator: does its node hold its peers, and why not"
    )
    add_arguments(status)

    # Run against the cluster to be linked: --cluster-name is its name, --namespace its
    # injector's namespace (where its canonical ConfigMap is).
    link = sub.add_parser("link", help="let another cluster read this one's peers")
    link.add_argument(
        "--into-namespace", default="stellar-system", help="the other cluster's injector namespace"
    )
    link.add_argument(
        "--api-server", default="", help="this API server's URL as the other cluster reaches it"
    )
    add_arguments(link)
    unlink = sub.add_parser("unlink", help="remove both ends of a link")
    unlink.add_argument(
        "--into-namespace", default="stellar-system", help="the other cluster's injector namespace"
    )
    unlink.add_argument(
        "--local-kubeconfig", default="", help="the other cluster, to delete its link Secret"
    )
    add_arguments(unlink)
    return parser


def _read(filename: str) -> str:
    if filename == "-":
        return sys.stdin.read()
    with open(filename, encoding="utf-8") as handle:
        return handle.read()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_namespace(args, os.environ)
    except SettingsError as exc:
        print(f"stellar-peers: {exc}", file=sys.stderr)
        return 2

    # Each command imports what it needs (downward, never a cycle): `inject` and
    # `explain -f` then start without loading the Kubernetes client or the server.
    if args.command == "serve":
        from webhook.cli.serve import run

        return run(settings, local=args.local)
    if args.command == "inject":
        from webhook.cli.offline import DocumentError, inject_text

        try:
            sys.stdout.write(inject_text(_read(args.filename), settings=settings))
        except (OSError, DocumentError) as exc:
            print(f"stellar-peers inject: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "explain":
        from webhook.cli.offline import DocumentError, explain_pod, explain_text

        try:
            if args.filename:
                text = explain_text(_read(args.filename), settings=settings)
                text += _admission_line(settings, live=False)
            elif args.pod:
                from webhook.cli.status import published_peer
                from webhook.kube.api import read_pod

                pod = read_pod(settings, namespace=args.pod_namespace, name=args.pod)
                found = published_peer(settings, namespace=args.pod_namespace, name=args.pod)
                text = explain_pod(pod, settings=settings, published=found)
                text += _admission_line(settings, live=True)
            else:
                print("stellar-peers explain: give -f FILE or a pod name", file=sys.stderr)
                return 2
        except (OSError, DocumentError) as exc:
            print(f"stellar-peers explain: {exc}", file=sys.stderr)
            return 1
        sys.stdout.write(text)
        return 0
    if args.command == "certs":
        from webhook.cli.certs import main as certs_main

        return certs_main(
            action=args.action, out=args.out, dns=args.dns, ips=args.ip, settings=settings
        )
    if args.command == "check":
        from webhook.cli.check import run as run_check

        return run_check(settings)
    if args.command in ("link", "unlink"):
        from webhook.cli import link as linking

        if args.cluster_name is None:
            print(
                f"stellar-peers {args.command}: give --cluster-name (the linked cluster's name)",
                file=sys.stderr,
            )
            return 2
        if args.command == "link":
            return linking.run_link(settings, into=args.into_namespace, server=args.api_server)
        return linking.run_unlink(
            settings, into=args.into_namespace, local_kubeconfig=args.local_kubeconfig
        )
    if args.command == "status":
        from webhook.cli.status import run as run_status

        return run_status(settings)
    return 2


def _admission_line(settings: Settings, *, live: bool) -> str:
    """Which admission mode injects (explain names it; the pod shown is the same)."""
    from webhook.cli import check_admission

    if not live:
        return check_admission.line(settings, None) + "\n"
    from webhook.kube import api as kube

    with kube.api_client(settings) as api:
        return check_admission.line(settings, api) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
