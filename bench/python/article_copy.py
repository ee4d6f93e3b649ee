#!/usr/bin/python3
"""The peer baseline: the article's asynchronous blob copy in Python.

The three functions follow the Azure docs article "Copy a blob with asynchronous
scheduling using Python" (azure-storage-blob): start the copy with
start_copy_from_url (optionally holding a lease on the source, broken right after
the start, as the article does), check it with get_blob_properties().copy.status,
and abort a pending copy with abort_copy.

Run as a program, it performs --count copies one after the other, checking each
until it leaves "pending", and prints one JSON object: wall and CPU seconds of the
copy loop (time.perf_counter / time.process_time) and of the whole process
(resource.getrusage), and the final statuses. The bench (bench/cmd/blobcopy-bench)
runs it against the same Azurite as the Go handler.
"""

import argparse
import json
import resource
import sys
import time

from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient


def copy_from_source_in_azure(source_blob: BlobClient, destination_blob: BlobClient,
                              source_url: str = "", lease_source: bool = False) -> dict:
    """Starts an asynchronous copy; with lease_source, leases the source around the start."""
    lease = None
    if lease_source:
        # Lease the source blob during the copy to prevent other clients from modifying it
        lease = BlobLeaseClient(client=source_blob)
        # Create an infinite lease by passing -1 as the lease duration
        lease.acquire(lease_duration=-1)
    # Start the copy operation - specify False for the requires_sync parameter
    copy_operation = destination_blob.start_copy_from_url(
        source_url=source_url or source_blob.url, requires_sync=False)
    if lease is not None:
        # Release the lease on the source blob (the article breaks it right away)
        lease.break_lease()
    return copy_operation


def check_copy_status(destination_blob: BlobClient) -> str:
    """Returns the destination's copy status: pending, success, aborted or failed."""
    properties = destination_blob.get_blob_properties()
    return properties.copy.status


def abort_copy(destination_blob: BlobClient) -> bool:
    """Aborts the destination's copy if it is still pending."""
    properties = destination_blob.get_blob_properties()
    copy_props = properties.copy
    if copy_props.status == "pending":
        destination_blob.abort_copy(copy_id=copy_props.id)
        return True
    return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connection-string", required=True)
    p.add_argument("--source-container", required=True)
    p.add_argument("--source-blob", required=True)
    p.add_argument("--source-url", default="", help="the URL storage reads (default: the source client's URL)")
    p.add_argument("--container", required=True, help="destination container (created if missing)")
    p.add_argument("--prefix", default="py-")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--lease", action="store_true", help="lease the source around the start, as the article does")
    p.add_argument("--poll-interval", type=float, default=0.5)
    args = p.parse_args()

    service = BlobServiceClient.from_connection_string(args.connection_string)
    container = service.get_container_client(args.container)
    if not container.exists():
        container.create_container()
    source = service.get_blob_client(args.source_container, args.source_blob)

    statuses: dict = {}
    checks = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(args.count):
        destination = service.get_blob_client(args.container, f"{args.prefix}{i}")
        copy_from_source_in_azure(source, destination, args.source_url, args.lease)
        status = check_copy_status(destination)
        checks += 1
        while status == "pending":
            time.sleep(args.poll_interval)
            status = check_copy_status(destination)
            checks += 1
        statuses[status] = statuses.get(status, 0) + 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    ru = resource.getrusage(resource.RUSAGE_SELF)
    json.dump({
        "copies": args.count,
        "checks": checks,
        "wall_s": wall,
        "cpu_s": cpu,
        "process_cpu_s": ru.ru_utime + ru.ru_stime,
        "statuses": statuses,
    }, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
