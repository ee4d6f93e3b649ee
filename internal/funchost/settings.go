package funchost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// Settings are the app settings as Core Tools presents them: the Values of
// local.settings.json under the real environment, which wins.
//
// Names are case-insensitive, as Azure app settings are; when two sources
// differ only in case, the later one (environment over file, later
// environment entries over earlier ones) wins.
type Settings struct {
	// byFold maps a case-folded name to the name as written and its value.
	byFold map[string]setting
}

type setting struct {
	name, value string
}

// NewSettings returns settings holding values, for tests and tools.
func NewSettings(values map[string]string) Settings {
	s := Settings{byFold: make(map[string]setting, len(values))}
	// Sorted so case-colliding names resolve the same way every run.
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s.set(name, values[name])
	}
	return s
}

// LoadSettings reads the Values of local.settings.json at localSettingsPath
// (a missing file is fine; "" skips the file) and overlays environ, in
// os.Environ form ("NAME=value").
func LoadSettings(localSettingsPath string, environ []string) (Settings, error) {
	s := Settings{byFold: map[string]setting{}}
	if localSettingsPath != "" {
		if err := s.loadLocalSettings(localSettingsPath); err != nil {
			return Settings{}, err
		}
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		// Windows lists per-drive entries like "=C:=C:\\"; they are not settings.
		if !ok || name == "" {
			continue
		}
		s.set(name, value)
	}
	return s, nil
}

func (s *Settings) loadLocalSettings(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read local settings: %w", err)
	}
	var file struct {
		IsEncrypted bool                       `json:"IsEncrypted"`
		Values      map[string]json.RawMessage `json:"Values"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	if file.IsEncrypted {
		return fmt.Errorf("%s: IsEncrypted is true; decrypt it with 'func settings decrypt'", path)
	}
	names := make([]string, 0, len(file.Values))
	for name := range file.Values {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		value, err := settingText(file.Values[name])
		if err != nil {
			return fmt.Errorf("%s: Values.%s: %w", path, name, err)
		}
		s.set(name, value)
	}
	return nil
}

// settingText accepts strings and, leniently, numbers and booleans, which
// end up as environment variable text anyway.
func settingText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case '{', '[':
		return "", errors.New("must be a string, not an object or array")
	case 'n':
		return "", nil
	default:
		return string(raw), nil
	}
}

func (s *Settings) set(name, value string) {
	if s.byFold == nil {
		s.byFold = map[string]setting{}
	}
	s.byFold[strings.ToLower(name)] = setting{name: name, value: value}
}

// Lookup returns the setting's value and whether it is set (possibly empty).
func (s Settings) Lookup(name string) (string, bool) {
	v, ok := s.byFold[strings.ToLower(name)]
	return v.value, ok
}

// Get returns the setting's value, or def when it is unset or empty.
func (s Settings) Get(name, def string) string {
	if v, ok := s.Lookup(name); ok && v != "" {
		return v
	}
	return def
}

// Resolve expands %NAME% app-setting references, as the host does in
// function.json (e.g. "schedule": "%COPY_STATUS_SCHEDULE%"). "%%" is a
// literal '%', and a lone '%' with no closing one is kept as is.
func (s Settings) Resolve(text string) (string, error) {
	var b strings.Builder
	rest := text
	for {
		start := strings.IndexByte(rest, '%')
		if start < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		end := strings.IndexByte(rest[start+1:], '%')
		if end < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		end += start + 1
		b.WriteString(rest[:start])
		name := rest[start+1 : end]
		if name == "" {
			b.WriteByte('%')
		} else {
			value, ok := s.Lookup(name)
			if !ok {
				return "", fmt.Errorf("%q refers to app setting %s, which is not set", text, name)
			}
			b.WriteString(value)
		}
		rest = rest[end+1:]
	}
}

// WithPrefix returns the settings whose names start with prefix, compared
// case-insensitively (e.g. "AzureWebJobsStorage__"), keyed by their names
// as written.
func (s Settings) WithPrefix(prefix string) map[string]string {
	fold := strings.ToLower(prefix)
	out := map[string]string{}
	for key, v := range s.byFold {
		if strings.HasPrefix(key, fold) {
			out[v.name] = v.value
		}
	}
	return out
}
