// Package funchost speaks the Azure Functions custom-handler protocol and
// runs the same functions standalone (a local HTTP server plus an in-process
// timer scheduler), so the binary behaves alike under the Functions host and
// on a developer machine.
//
// It knows nothing of blobs or copies: it decodes invocations, reads the app
// files (host.json, function.json, local.settings.json), parses NCRONTAB
// schedules and serves HTTP.
package funchost
