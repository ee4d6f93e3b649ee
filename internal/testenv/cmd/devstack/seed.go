package main

import (
	"bytes"
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// bigDemoSize is the size of source/big.bin: large enough for the CLI's progress bar
// to show a rate while a slowdemo copy runs, small enough to upload in a second.
const bigDemoSize = 16 << 20

func demoBlobs(big bool) string {
	if big {
		return "hello.txt, big.bin (16 MiB)"
	}
	return "hello.txt"
}

// seedDemo creates the containers and blobs the README's examples use, in both Azurite
// accounts. Existing blobs are left as they are (a source may be leased by a copy the
// handler still tracks), so the examples' answers stay the same from run to run.
func seedDemo(ctx context.Context, endpoint func(account string) string, big bool) error {
	for _, account := range []string{devAccount, secondAccount} {
		cred, err := azblob.NewSharedKeyCredential(account, devKey)
		if err != nil {
			return err
		}
		c, err := azblob.NewClientWithSharedKeyCredential(endpoint(account)+"/", cred, nil)
		if err != nil {
			return err
		}
		for _, name := range []string{"source", "backup"} {
			if _, err := c.CreateContainer(ctx, name, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
				return fmt.Errorf("create container %s/%s: %w", account, name, err)
			}
		}
		blobs := map[string][]byte{"hello.txt": []byte("hello from " + account + "\n")}
		if big {
			blobs["big.bin"] = bytes.Repeat([]byte("blobcopy demo data\n"), bigDemoSize/19+1)[:bigDemoSize]
		}
		for name, data := range blobs {
			b := c.ServiceClient().NewContainerClient("source").NewBlobClient(name)
			if _, err := b.GetProperties(ctx, nil); err == nil {
				continue
			} else if !bloberror.HasCode(err, bloberror.BlobNotFound) {
				return fmt.Errorf("read %s/source/%s: %w", account, name, err)
			}
			if _, err := c.UploadBuffer(ctx, "source", name, data, nil); err != nil {
				return fmt.Errorf("upload %s/source/%s: %w", account, name, err)
			}
		}
	}
	return nil
}
