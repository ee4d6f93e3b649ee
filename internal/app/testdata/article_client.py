"""The article's own Python calls ("Copy a blob with asynchronous scheduling using
Python"), used as an independent client: Debian's azure-storage-blob reads what the Go
handler did.

usage: article_client.py status <connection string> <container> <blob>
       article_client.py start  <connection string> <source url> <container> <blob>
       article_client.py abort  <connection string> <container> <blob> <copy id>
Prints one JSON object.
"""
import json
import sys

from azure.storage.blob import BlobServiceClient, BlobClient


def copy_from_source_in_azure_async(source_url: str, destination_blob: BlobClient):
    # As in the article: start_copy_from_url and return the copy id.
    copy_operation = destination_blob.start_copy_from_url(source_url)
    return copy_operation


def check_copy_status(destination_blob: BlobClient):
    # As in the article: get_blob_properties().copy
    properties = destination_blob.get_blob_properties()
    copy_props = properties.copy
    return {
        "status": copy_props.status,
        "progress": copy_props.progress,
        "id": copy_props.id,
        "source": copy_props.source,
        "statusDescription": copy_props.status_description,
        "completionTime": copy_props.completion_time.isoformat() if copy_props.completion_time else None,
        "size": properties.size,
        "content": destination_blob.download_blob().readall().decode("utf-8", "replace"),
    }


def abort_copy(destination_blob: BlobClient, copy_id: str):
    destination_blob.abort_copy(copy_id)


def main(argv):
    cmd, conn = argv[1], argv[2]
    service = BlobServiceClient.from_connection_string(conn)
    if cmd == "status":
        blob = service.get_blob_client(argv[3], argv[4])
        print(json.dumps(check_copy_status(blob)))
    elif cmd == "start":
        blob = service.get_blob_client(argv[4], argv[5])
        op = copy_from_source_in_azure_async(argv[3], blob)
        print(json.dumps({"id": op["copy_id"], "status": op["copy_status"]}))
    elif cmd == "abort":
        abort_copy(service.get_blob_client(argv[3], argv[4]), argv[5])
        print(json.dumps({"aborted": True}))
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
