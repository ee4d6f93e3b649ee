package funchost

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// HostConfig is the part of host.json this handler cares about.
type HostConfig struct {
	Version               string
	DefaultExecutablePath string
	// EnableForwardingHTTPRequest is the host's legacy forwarding setting
	// (the host rebuilds each request); EnableProxyingHTTPRequest the
	// current one (YARP streams it). See docs/host-protocol.md.
	EnableForwardingHTTPRequest bool
	EnableProxyingHTTPRequest   bool
	// RoutePrefix is extensions.http.routePrefix: "api" unless set, and may
	// be set to "" (no prefix).
	RoutePrefix string
	// FunctionTimeout is zero when host.json leaves it unset or sets "-1"
	// (no limit).
	FunctionTimeout time.Duration
}

// ForwardsHTTP reports whether the host hands HTTP requests to the handler
// at their own path (either setting); without it the host would POST
// invocation payloads to /<functionName>, which this handler does not serve
// for HTTP functions (DefaultHttpWorkerService.cs InvokeAsync). With both set,
// a host that knows enableProxyingHttpRequest proxies (InvokeAsync asks it
// first) and an older host, which ignores it, forwards.
func (c HostConfig) ForwardsHTTP() bool {
	return c.EnableProxyingHTTPRequest || c.EnableForwardingHTTPRequest
}

// DefaultRoutePrefix is the host's HTTP route prefix when host.json sets none.
const DefaultRoutePrefix = "api"

// JobHostSettingPrefix begins the app settings the Functions host reads as host.json
// values: it reads host.json through .NET configuration as the section
// "AzureFunctionsJobHost" (ConfigurationSectionNames.JobHost), and app settings
// (environment variables) named AzureFunctionsJobHost__<path> are read after it, so they
// win (Microsoft's host.json reference, "Override host.json values"). Keys are
// case-insensitive and "__" stands for the section separator ':', which may be written
// too: AzureFunctionsJobHost__extensions__http__routePrefix,
// AzureFunctionsJobHost:functionTimeout.
const JobHostSettingPrefix = "AzureFunctionsJobHost"

// hostSetting is an app setting overriding one host.json value.
type hostSetting struct{ name, value string }

// hostJSONOverrides returns the settings overriding host.json values, keyed by the
// value's path folded to lower case with ':' between its parts
// ("extensions:http:routeprefix"). Two spellings of one path with different values are
// an error: the host would take either.
func hostJSONOverrides(s Settings) (map[string]hostSetting, error) {
	prefix := strings.ToLower(JobHostSettingPrefix) + ":"
	names := make([]string, 0)
	for key := range s.byFold {
		if strings.HasPrefix(strings.ReplaceAll(key, "__", ":"), prefix) {
			names = append(names, key)
		}
	}
	sort.Strings(names)
	out := map[string]hostSetting{}
	for _, key := range names {
		v := s.byFold[key]
		path := strings.TrimPrefix(strings.ReplaceAll(key, "__", ":"), prefix)
		if prev, dup := out[path]; dup && prev.value != v.value {
			return nil, fmt.Errorf("app settings %s (%q) and %s (%q) both override host.json's %s, differently", prev.name, prev.value, v.name, v.value, path)
		}
		out[path] = hostSetting(v)
	}
	return out, nil
}

// LoadHost reads <appDir>/host.json and applies the app settings that override its
// values under the host (JobHostSettingPrefix), so the handler sees the configuration
// the host runs with: every value HostConfig holds but Version, which the host reads
// from the file alone.
func LoadHost(appDir string, s Settings) (HostConfig, error) {
	path := filepath.Join(appDir, "host.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return HostConfig{}, fmt.Errorf("read host config: %w", err)
	}
	var raw struct {
		Version       string `json:"version"`
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
			EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
			EnableProxyingHTTPRequest   bool `json:"enableProxyingHttpRequest"`
		} `json:"customHandler"`
		Extensions struct {
			HTTP struct {
				// A pointer tells "unset" (api) from "" (no prefix).
				RoutePrefix *string `json:"routePrefix"`
			} `json:"http"`
		} `json:"extensions"`
		FunctionTimeout string `json:"functionTimeout"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return HostConfig{}, fmt.Errorf("parse %s: %w", path, err)
	}
	overrides, err := hostJSONOverrides(s)
	if err != nil {
		return HostConfig{}, err
	}
	timeoutFrom := path
	if o, ok := overrides["functiontimeout"]; ok {
		raw.FunctionTimeout, timeoutFrom = o.value, "app setting "+o.name
	}
	if o, ok := overrides["extensions:http:routeprefix"]; ok {
		v := o.value
		raw.Extensions.HTTP.RoutePrefix = &v
	}
	if o, ok := overrides["customhandler:description:defaultexecutablepath"]; ok {
		raw.CustomHandler.Description.DefaultExecutablePath = o.value
	}
	for key, dst := range map[string]*bool{
		"customhandler:enableforwardinghttprequest": &raw.CustomHandler.EnableForwardingHTTPRequest,
		"customhandler:enableproxyinghttprequest":   &raw.CustomHandler.EnableProxyingHTTPRequest,
	} {
		o, ok := overrides[key]
		if !ok || strings.TrimSpace(o.value) == "" {
			continue
		}
		// .NET's bool.Parse: true or false in any case.
		switch v := strings.TrimSpace(o.value); {
		case strings.EqualFold(v, "true"):
			*dst = true
		case strings.EqualFold(v, "false"):
			*dst = false
		default:
			return HostConfig{}, fmt.Errorf("app setting %s: %q is not true or false", o.name, o.value)
		}
	}
	cfg := HostConfig{
		Version:                     raw.Version,
		DefaultExecutablePath:       raw.CustomHandler.Description.DefaultExecutablePath,
		EnableForwardingHTTPRequest: raw.CustomHandler.EnableForwardingHTTPRequest,
		EnableProxyingHTTPRequest:   raw.CustomHandler.EnableProxyingHTTPRequest,
		RoutePrefix:                 DefaultRoutePrefix,
	}
	if p := raw.Extensions.HTTP.RoutePrefix; p != nil {
		cfg.RoutePrefix = strings.Trim(*p, "/")
	}
	if t := strings.TrimSpace(raw.FunctionTimeout); t != "" && t != "-1" {
		d, err := parseTimeSpan(t)
		if err != nil {
			return HostConfig{}, fmt.Errorf("%s: functionTimeout: %w", timeoutFrom, err)
		}
		if d <= 0 {
			return HostConfig{}, fmt.Errorf("%s: functionTimeout %q must be positive or -1", timeoutFrom, t)
		}
		cfg.FunctionTimeout = d
	}
	return cfg, nil
}

// FunctionConfig is one function's function.json.
type FunctionConfig struct {
	Name     string    `json:"-"`
	Bindings []Binding `json:"bindings"`
}

// Binding is one entry of function.json's bindings array.
type Binding struct {
	Type      string   `json:"type"`
	Direction string   `json:"direction"`
	Name      string   `json:"name"`
	AuthLevel string   `json:"authLevel,omitempty"`
	Methods   []string `json:"methods,omitempty"`
	Route     string   `json:"route,omitempty"`
	// Schedule is the timer's NCRONTAB or TimeSpan; it may be a %SETTING%
	// reference, resolve it with Settings.Resolve.
	Schedule     string `json:"schedule,omitempty"`
	RunOnStartup bool   `json:"runOnStartup,omitempty"`
	// UseMonitor is nil when unset; the host then decides by schedule period.
	UseMonitor *bool  `json:"useMonitor,omitempty"`
	QueueName  string `json:"queueName,omitempty"`
	Connection string `json:"connection,omitempty"`
}

// LoadFunction reads <appDir>/<name>/function.json.
func LoadFunction(appDir, name string) (FunctionConfig, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return FunctionConfig{}, fmt.Errorf("function name %q is not a folder name", name)
	}
	path := filepath.Join(appDir, name, "function.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return FunctionConfig{}, fmt.Errorf("read function %s: %w", name, err)
	}
	var cfg FunctionConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return FunctionConfig{}, fmt.Errorf("parse %s: %w", path, err)
	}
	cfg.Name = name
	return cfg, nil
}

// TimerBinding returns the function's timerTrigger binding, if any.
func (f FunctionConfig) TimerBinding() (Binding, bool) {
	for _, b := range f.Bindings {
		// The host matches binding types case-insensitively.
		if strings.EqualFold(b.Type, "timerTrigger") {
			return b, true
		}
	}
	return Binding{}, false
}

// parseTimeSpan parses .NET TimeSpan text as host.json and timer schedules
// use it: [-][d.]hh:mm[:ss[.fffffff]].
func parseTimeSpan(s string) (time.Duration, error) {
	text := strings.TrimSpace(s)
	neg := strings.HasPrefix(text, "-")
	text = strings.TrimPrefix(text, "-")

	var days int64
	clock := text
	// A '.' before the first ':' separates days.
	if dot, colon := strings.Index(text, "."), strings.Index(text, ":"); dot >= 0 && colon > dot {
		d, err := parseDigits(text[:dot])
		if err != nil {
			return 0, fmt.Errorf("TimeSpan %q: days: %w", s, err)
		}
		days, clock = d, text[dot+1:]
	}
	parts := strings.Split(clock, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, fmt.Errorf("TimeSpan %q: want hh:mm:ss", s)
	}
	hours, err := parseDigits(parts[0])
	if err != nil || hours > 23 && days > 0 {
		return 0, fmt.Errorf("TimeSpan %q: bad hours", s)
	}
	minutes, err := parseDigits(parts[1])
	if err != nil || minutes > 59 {
		return 0, fmt.Errorf("TimeSpan %q: bad minutes", s)
	}
	var seconds time.Duration
	if len(parts) == 3 {
		secText, fracText, hasFrac := strings.Cut(parts[2], ".")
		sec, err := parseDigits(secText)
		if err != nil || sec > 59 {
			return 0, fmt.Errorf("TimeSpan %q: bad seconds", s)
		}
		seconds = time.Duration(sec) * time.Second
		if hasFrac {
			if len(fracText) == 0 || len(fracText) > 9 {
				return 0, fmt.Errorf("TimeSpan %q: bad fraction of a second", s)
			}
			frac, err := parseDigits(fracText)
			if err != nil {
				return 0, fmt.Errorf("TimeSpan %q: bad fraction of a second", s)
			}
			for range 9 - len(fracText) {
				frac *= 10
			}
			seconds += time.Duration(frac)
		}
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(hours)*time.Hour + time.Duration(minutes)*time.Minute + seconds
	if neg {
		d = -d
	}
	return d, nil
}

func parseDigits(s string) (int64, error) {
	if s == "" || len(s) > 9 {
		return 0, fmt.Errorf("%q is not a small number", s)
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a number", s)
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}
