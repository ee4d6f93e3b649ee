package app

// Setting documents one app setting the handler reads. The catalogue is the single
// source for the README's configuration table and for the tests that check
// local.settings.json and infra/ set every one of them.
type Setting struct {
	Name    string
	Default string
	Meaning string
	// Local is false for settings that must not appear in local.settings.json (set by
	// the host or per deployment only).
	Local bool
	// Infra is true when the Bicep template must set it.
	Infra bool
}

// Settings is the catalogue, in README order.
var Settings = []Setting{
	{"FUNCTIONS_WORKER_RUNTIME", "custom", "Functions runtime: always `custom` for this handler (on Flex Consumption it is `functionAppConfig.runtime`, not an app setting).", true, true},
	{"AzureWebJobsStorage", "UseDevelopmentStorage=true", "The app's storage (queue, job records, default destination account): a connection string, or use the identity-based `AzureWebJobsStorage__accountName` / `__blobServiceUri` / `__queueServiceUri` / `__credential` / `__clientId` settings.", true, false},
	{"AzureWebJobsStorage__accountName", "", "Identity-based connection to the app's storage account (managed identity; no keys).", false, true},
	{"AzureWebJobsStorage__credential", "", "`managedidentity` to use the app's managed identity (with `__clientId` for a user-assigned one).", false, true},
	{"AzureWebJobsStorage__clientId", "", "Client id of a user-assigned managed identity.", false, true},
	{"COPY_STATUS_SCHEDULE", "*/30 * * * * *", "statusfn's schedule: 6- or 5-field NCRONTAB, or a TimeSpan such as 00:05:00 (referenced as `%COPY_STATUS_SCHEDULE%` in statusfn/function.json).", true, true},
	{"COPY_QUEUE_NAME", "copyjobs", "Storage queue of tracking messages; `<name>-poison` holds poisoned ones.", true, true},
	{"COPY_RECORDS_CONTAINER", "copyjobs", "Blob container of job records (`jobs/<id>.json`); never a copy destination.", true, true},
	{"COPY_SOURCE_SAS_LIFETIME", "24h", "Lifetime of a generated read-only source SAS when the request names none (`sasLifetime`); at most 7 days.", true, true},
	{"COPY_FIRST_POLL", "5s", "When a new job is first polled; later polls back off exponentially.", true, true},
	{"COPY_MAX_POLL_INTERVAL", "5m", "Longest wait between two polls of one pending copy; under 7 days (Azure Queue hides a message for at most that).", true, true},
	{"COPY_START_GRACE", "2m", "How long a job may stay `starting` before a tick resumes it (crash recovery).", true, true},
	{"COPY_FULL_SWEEP_INTERVAL", "1h", "How often (once for all instances together) the sweep for crashed starts lists every `starting` record instead of asking the records' blob index.", true, false},
	{"COPY_MAX_FAILURES", "5", "Failed visits in a row before a tracking message goes to the poison queue (storage being unavailable does not count), and transient start failures in a row before a start ends startFailed.", true, true},
	{"COPY_POLL_CONCURRENCY", "16", "Copies polled at once by one status tick.", true, true},
	{"COPY_MAX_CALLBACK_ATTEMPTS", "8", "Completion callback attempts before giving up, spaced as `COPY_CALLBACK_RETRY_DELAYS` says (8 span about 28 hours by default).", true, true},
	{"COPY_CALLBACK_RETRY_DELAYS", "5s,5m,30m,2h,5h,10h", "Comma-separated waits after the 1st, 2nd, ... failed callback attempt before the next; the last one repeats (Standard Webhooks' schedule by default).", true, false},
	{"COPY_ALLOWED_DESTINATIONS", "", "Comma-separated `account/container` patterns (`default` is the app's account, `*` wildcards); empty allows every configured account.", true, true},
	{"COPY_ALLOWED_SOURCE_HOSTS", "", "Comma-separated source hosts (`*.blob.core.windows.net` style); empty allows any https host.", true, true},
	{"COPY_ALLOW_HTTP_SOURCES", "false", "Allow plain-http sources on non-loopback hosts (development only).", true, true},
	{"COPY_CALLBACK_ALLOWED_HOSTS", "127.0.0.1,localhost", "Hosts completion callbacks may be sent to: `host` (port 443; any port for a loopback host) or `host:port`, `*.suffix` wildcards; https only off loopback; redirects are never followed; empty disables callbacks.", true, true},
	{"COPY_CALLBACK_SECRET", "", "Signing secret of completion callbacks, `whsec_` + base64 of 24-64 random bytes (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`); empty sends them unsigned.", true, false},
	{"COPY_RULES", "", "JSON array of Event Grid / webhook copy rules (see README \"Event Grid\").", true, true},
	{"BATCH_MAX_CHILDREN", "100000", "Most children (copies) one batch (`POST /api/batches`) may have: a larger source is refused (`BatchTooLarge`) before any child starts; AzCopy suits bulk migrations.", false, false},
	{"COPY_EVENT_CONCURRENCY", "16", "Events of one Event Grid delivery handled at once (results keep the events' order).", true, false},
	{"COPY_ACCOUNT_<ALIAS>", "", "An extra storage account (source or destination) as a connection string; or `COPY_ACCOUNT_<ALIAS>__blobServiceUri` (+ `__credential`, `__clientId`) for an Entra identity, which makes the app sign user-delegation SAS.", false, false},
	{"BLOBCOPY_LISTEN_ADDRESS", "127.0.0.1:7071", "Standalone listen address (ignored under the Functions host, which sets FUNCTIONS_CUSTOMHANDLER_PORT).", true, false},
	{"BLOBCOPY_FUNCTION_KEYS", "", "Standalone mode: comma-separated keys accepted in `x-functions-key` or `?code=`.", true, false},
	{"BLOBCOPY_AUTH_DISABLED", "true (local only)", "Standalone mode on a loopback address only: accept requests without a key.", true, false},
	{"BLOBCOPY_TRUST_CLIENT_PRINCIPAL", "false", "Read the caller's identity from `X-MS-CLIENT-PRINCIPAL` (README \"Callers and owners\"). Under the host it takes effect only while App Service Authentication is on (`WEBSITE_AUTH_ENABLED=True`, which the platform sets); standalone only on a loopback address, for tests. Otherwise the header is ignored: a client could forge it.", true, true},
	{"WEBSITE_AUTH_ENABLED", "", "Set by App Service when App Service Authentication is on (read-only); the handler trusts `X-MS-CLIENT-PRINCIPAL` under the host only then.", false, false},
	{"BLOBCOPY_LOG_LEVEL", "info", "debug, info, warn or error.", true, true},
	{"AzureFunctionsJobHost__<path>", "", "Overrides the host.json value at `<path>` (`__` or `:` between sections, any case), for the host and, for every value it reads (`functionTimeout`, `extensions__http__routePrefix`, `customHandler__enableProxyingHttpRequest` / `__enableForwardingHttpRequest` / `__description__defaultExecutablePath`), for the handler too: e.g. `AzureFunctionsJobHost__functionTimeout=00:05:00`.", false, false},
}
