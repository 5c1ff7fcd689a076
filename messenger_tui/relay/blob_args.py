"""Command-line options of the blob route (attachments): size cap, quotas, lifetimes.

Call :func:`add_blob_arguments` on the relay's parser and pass :func:`blob_config` as
``RelayConfig(blob=...)``. Defaults are :class:`~messenger_tui.relay.blob_index.BlobConfig`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from messenger_tui.relay.blob_index import DAY_S, MIB, BlobConfig


def add_blob_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the blob route's options."""
    d = BlobConfig()
    g = parser.add_argument_group("attachments (blob route, see docs/protocol.md)")
    g.add_argument(
        "--blob-dir",
        type=Path,
        help="where attachment blobs are stored (default: <data>/blobs)",
    )
    g.add_argument(
        "--blob-max-size",
        type=int,
        default=d.max_file_size,
        metavar="BYTES",
        help=f"largest attachment (file size) accepted (default {d.max_file_size // MIB} MiB)",
    )
    g.add_argument(
        "--blob-quota-bytes",
        type=int,
        default=d.quota_bytes,
        metavar="BYTES",
        help=f"blob bytes one identity may store (default {d.quota_bytes // MIB} MiB)",
    )
    g.add_argument(
        "--blob-quota-count",
        type=int,
        default=d.quota_count,
        metavar="N",
        help=f"blobs one identity may store (default {d.quota_count})",
    )
    g.add_argument(
        "--blob-max-uploads",
        type=int,
        default=d.max_uploads,
        metavar="N",
        help=f"unfinished uploads one identity may hold (default {d.max_uploads})",
    )
    g.add_argument(
        "--blob-total-bytes",
        type=int,
        default=d.total_bytes,
        metavar="BYTES",
        help=f"blob bytes the whole relay stores at most (default {d.total_bytes // MIB} MiB)",
    )
    g.add_argument(
        "--blob-ttl-days",
        type=float,
        default=d.ttl_s / DAY_S,
        help="days a finished blob is kept (default 30)",
    )
    g.add_argument(
        "--blob-partial-ttl-hours",
        type=float,
        default=d.partial_ttl_s / 3600,
        help="hours an upload may go without a chunk before it is removed (default 24)",
    )
    g.add_argument(
        "--blob-sweep-interval",
        type=float,
        default=d.sweep_interval_s,
        metavar="SECONDS",
        help="how often expired blobs and stale uploads are removed (default 600)",
    )
    g.add_argument(
        "--blob-read-ahead",
        type=int,
        default=d.read_ahead,
        metavar="CHUNKS",
        help=f"chunks a download reads ahead of the socket, 0-64 (default {d.read_ahead})",
    )


def blob_config(args: argparse.Namespace) -> BlobConfig:
    """The :class:`BlobConfig` the options describe (raises ValueError when invalid)."""
    return BlobConfig(
        max_file_size=args.blob_max_size,
        quota_bytes=args.blob_quota_bytes,
        quota_count=args.blob_quota_count,
        max_uploads=args.blob_max_uploads,
        total_bytes=args.blob_total_bytes,
        ttl_s=args.blob_ttl_days * DAY_S,
        partial_ttl_s=args.blob_partial_ttl_hours * 3600,
        sweep_interval_s=args.blob_sweep_interval,
        read_ahead=args.blob_read_ahead,
        dir=Path(args.blob_dir).expanduser() if args.blob_dir else None,
    )
