"""``scripts/cluster up|down|status``: a local deployment of every part, as on several hosts.

Three RabbitMQ nodes (``scripts/rabbitmq-cluster.sh``, quorum queues), a private PostgreSQL
(``cluster_procs.PrivatePostgres``, a fresh database) or a fresh database on ``--store-url``'s
server, the national simulator, two gateway processes on two ports and two worker processes,
all sharing one ``gateway.toml`` whose ``broker.url`` lists the three nodes. Everything lives in
the deployment's directory (``var/cluster`` by default): ``cluster.json`` (ports and pids),
``demo/`` (settings, directory, PKI, credentials), ``logs/``, ``postgres/``, ``rabbitmq/``.

    scripts/cluster up [--dir DIR] [--store-url postgresql+asyncpg://…] [--workers N]
    scripts/cluster status [--dir DIR]        scripts/cluster down [--dir DIR] [--clean]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_deployment import STATE_NAME, Deployment, http_ok  # noqa: E402
from cluster_procs import (  # noqa: E402
    drop_database_on,
    free_port,
    fresh_database_on,
    reachable_by_others,
)
from cluster_toml import deployment_toml  # noqa: E402

from gateway.demo.setup import init_demo  # noqa: E402

DEFAULT_DIR = REPO / "var" / "cluster"


@dataclass(frozen=True)
class UpOptions:
    dir: Path = DEFAULT_DIR
    store_url: str | None = None  # an existing PostgreSQL server (no restart fault then)
    workers: int = 2
    gateways: int = 2
    rmq_amqp_base: int = 5770  # nodes on 5771-5773
    rmq_dist_base: int = 25770
    rmq_prefix: str = "lgspc"
    settings: dict[str, str] = field(default_factory=dict)  # "section.key" -> TOML value
    rmq_dir: Path | None = None  # use the cluster rabbitmq-cluster.sh runs there (not started)


def up(options: UpOptions) -> Deployment:
    """A fresh deployment in ``options.dir`` (what was there is wiped), every process ready."""
    root = options.dir.resolve()
    if (root / STATE_NAME).exists():
        down(Deployment.load(root), clean=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o755)  # the private PostgreSQL runs as another user when we are root
    broker_urls = [f"amqp://guest:guest@127.0.0.1:{options.rmq_amqp_base + i}/" for i in (1, 2, 3)]
    pg_port = None if options.store_url else free_port()
    pg_dir = root / "postgres"
    if pg_port and os.geteuid() == 0 and not reachable_by_others(root):  # e.g. pytest tmp_path
        pg_dir = Path(tempfile.mkdtemp(prefix="lgsp-cluster-pg-"))
        pg_dir.chmod(0o755)
    dep = Deployment(
        dir=str(root),
        gateway_ports=[free_port() for _ in range(options.gateways)],
        workers=options.workers,
        national_port=free_port(),
        store_url="",
        broker_urls=broker_urls,
        broker_prefix=f"lgsp-cluster-{secrets.token_hex(3)}",
        rmq_amqp_base=options.rmq_amqp_base,
        rmq_dist_base=options.rmq_dist_base,
        rmq_prefix=options.rmq_prefix,
        pg_port=pg_port,
        pg_dir=str(pg_dir) if pg_port else None,
        external_store=options.store_url,
        settings=dict(options.settings),
        rmq_dir=str(options.rmq_dir.resolve()) if options.rmq_dir else None,
    )
    dep.save()
    try:
        _start(dep, options)
    except BaseException:
        down(dep)
        raise
    return dep


def _start(dep: Deployment, options: UpOptions) -> None:
    root = dep.root
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        rabbit = pool.submit(dep.rabbit, "status" if dep.rmq_dir else "up")
        try:
            dep.store_url = _fresh_store(dep)
            dep.save()
            setup = init_demo(
                root / "demo",
                port=dep.gateway_ports[0],
                broker_url=dep.broker_urls[0],
                store_url=dep.store_url,
                prefix=dep.broker_prefix,
                national_port=dep.national_port,
            )
            demo_toml = setup.config_path.read_text(encoding="utf-8")
            toml = deployment_toml(demo_toml, dep.broker_urls, options.settings)
            dep.config.write_text(toml, encoding="utf-8")
        finally:
            result = rabbit.result()
        (root / "logs").mkdir(exist_ok=True)
        (root / "logs" / "rabbitmq-up.log").write_text(result.stderr, encoding="utf-8")
    for node in (1, 2, 3):
        dep.tune_rabbit(node)
    for name in dep.names():  # the simulator first: the workers' agency sync calls it
        dep.start(name, wait=False)
    for name in dep.names():
        dep.wait_ready(name)


def _fresh_store(dep: Deployment) -> str:
    if dep.external_store is not None:
        return fresh_database_on(dep.external_store)
    pg = dep.postgres
    assert pg is not None
    pg.init()
    pg.start()
    pg.create_database("lgsp")
    return f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/lgsp"


def down(dep: Deployment, *, clean: bool = False) -> None:
    """Stop everything (gateways and workers drain on SIGTERM); ``clean`` removes the dir."""
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(dep.stop, reversed(dep.names())))
    pg = dep.postgres
    if pg is not None and pg.data.exists():
        pg.stop("fast")
    if dep.external_store is not None and dep.store_url:
        drop_database_on(dep.external_store, dep.store_url)
    if dep.rmq_dir is None:
        dep.rabbit("down", check=False)
    if clean:
        if pg is not None:
            shutil.rmtree(pg.dir, ignore_errors=True)
        shutil.rmtree(dep.root, ignore_errors=True)


def status(dep: Deployment) -> dict[str, object]:
    procs = {name: dep.running(name) for name in dep.names()}
    return {
        "processes": procs,
        "gateways_ready": [http_ok(f"{url}/readyz") for url in dep.gateway_urls],
        "rabbitmq_nodes_up": [dep.rabbit_node_up(i) for i in (1, 2, 3)],
        "postgres_up": dep.postgres.running() if dep.postgres else None,
    }


def addresses(dep: Deployment) -> str:
    creds = dep.credentials
    lines = [
        f"deployment in {dep.dir}",
        *(f"  gateway {i}: {url}  (/readyz, /admin/)" for i, url in enumerate(dep.gateway_urls, 1)),
        f"  workers: {dep.workers} processes",
        *(f"  RabbitMQ node {i + 1}: {url}" for i, url in enumerate(dep.broker_urls)),
        f"  PostgreSQL: {dep.store_url}",
        f"  national simulator: {dep.national_endpoint}",
        f"  settings: {dep.config}",
        f"  credentials: {dep.root / 'demo' / 'credentials.json'} "
        f"(admin token {creds['_admin']['token'][:16]}…)",
        f"  logs: {dep.root / 'logs'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--store-url", help="an existing PostgreSQL server (fresh database)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clean", action="store_true", help="down: remove the directory")
    args = parser.parse_args(argv)
    if args.command == "up":
        dep = up(UpOptions(dir=args.dir, store_url=args.store_url, workers=args.workers))
        print(addresses(dep))
        return 0
    dep = Deployment.load(args.dir)
    if args.command == "down":
        down(dep, clean=args.clean)
        print(f"deployment in {dep.dir} stopped")
        return 0
    state = status(dep)
    print(addresses(dep))
    print(json.dumps(state))
    return 0 if all(state["processes"].values()) else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
