// Package rules reads the COPY_RULES setting: named rules that map blobs of a source
// area (storage account, container, name prefix) to copies into a destination area.
// Event Grid deliveries and the webhook form {"rule","source"} both go through them.
// The package knows neither HTTP nor storage.
package rules

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/blobcopy/blobcopy/internal/config"
)

// Rule maps blobs of one source area to copies. Rules come from COPY_RULES, a JSON array.
type Rule struct {
	Name string `json:"name"`
	// SourceAccount is the storage account name (as in the event's topic); empty
	// matches any account.
	SourceAccount   string      `json:"sourceAccount,omitempty"`
	SourceContainer string      `json:"sourceContainer"`
	SourcePrefix    string      `json:"sourcePrefix,omitempty"`
	Destination     Destination `json:"destination"`
	LeaseSource     bool        `json:"leaseSource,omitempty"`
	Tier            string      `json:"tier,omitempty"`
	CallbackURL     string      `json:"callbackUrl,omitempty"`
	// AcceptCopyEvents lets BlobCreated events raised by Copy Blob (api "CopyBlob")
	// start copies, once the copy that raised them has succeeded. Off by default: such
	// an event fires when a copy starts, and is how copy loops begin.
	AcceptCopyEvents bool `json:"acceptCopyEvents,omitempty"`
	// DestinationAccountName is the storage account name Destination.Account (an alias)
	// stands for, set by Resolve from the app's configured accounts. Source accounts are
	// storage account names (as in an event's topic) and aliases need not be: the loop
	// checks compare names, never an alias with a name.
	DestinationAccountName string `json:"-"`
}

// Destination is where a rule's copies go: the blob keeps its name below the source
// prefix, under Prefix.
type Destination struct {
	// Account is the configured alias ("" or "default" for the app's account).
	Account   string `json:"account,omitempty"`
	Container string `json:"container"`
	Prefix    string `json:"prefix,omitempty"`
}

// containerName is Azure's container naming rule ($root aside).
var containerName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)

// ValidContainerName reports whether name follows Azure's container naming rules.
func ValidContainerName(name string) bool {
	return name == "$root" || containerName.MatchString(name) && !strings.Contains(name, "--")
}

// Parse reads and checks the COPY_RULES setting; empty means no rules.
func Parse(raw string) ([]Rule, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var rules []Rule
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf("COPY_RULES: %w", err)
	}
	seen := map[string]bool{}
	for i, r := range rules {
		if err := r.check(seen); err != nil {
			return nil, fmt.Errorf("COPY_RULES[%d]%s: %w", i, nameSuffix(r.Name), err)
		}
		seen[r.Name] = true
	}
	return rules, nil
}

func nameSuffix(name string) string {
	if name == "" {
		return ""
	}
	return " (" + name + ")"
}

func (r Rule) check(seen map[string]bool) error {
	switch {
	case r.Name == "":
		return fmt.Errorf("name is required")
	case seen[r.Name]:
		return fmt.Errorf("duplicate name %q", r.Name)
	case !ValidContainerName(r.SourceContainer):
		return fmt.Errorf("sourceContainer %q is not a valid container name", r.SourceContainer)
	case !ValidContainerName(r.Destination.Container):
		return fmt.Errorf("destination.container %q is not a valid container name", r.Destination.Container)
	case badPrefix(r.Destination.Prefix):
		// Every destination name begins with it (after a "/" when the source prefix has
		// none at its end): Azure's rules say no path segment ends with a dot, and the API
		// refuses such a name (400), which Event Grid would drop.
		return fmt.Errorf(`destination.prefix %q has a "." or ".." segment or a control character`, r.Destination.Prefix)
	case r.AcceptCopyEvents && r.SourceAccount == "" && r.feedsItself():
		// A source area in any account holds the destination's, whatever its alias names,
		// and the rule takes its copies' events: refused now. Otherwise Resolve decides,
		// once the alias names an account.
		return errFeedsItself
	}
	return nil
}

var errFeedsItself = fmt.Errorf("the destination lies inside the source area: every copy would trigger the rule again")

// feedsItself reports whether the blobs the rule's copies create could lie in its own
// source area (an unresolved destination alias may be any account).
func (r Rule) feedsItself() bool {
	return r.Destination.Container == r.SourceContainer && strings.HasPrefix(r.Destination.Prefix, r.SourcePrefix) &&
		r.destinationMayBe(r.SourceAccount)
}

// destinationMayBe reports whether the destination account may be the storage account
// named account ("" for any account, as a rule's SourceAccount says).
func (r Rule) destinationMayBe(account string) bool {
	if account == "" || r.DestinationAccountName == "" {
		return true // any account, or an alias not resolved yet
	}
	return strings.EqualFold(r.DestinationAccountName, account)
}

// sourceMayBe reports whether the rule's source area may be in the storage account
// named account ("" for an unknown one).
func (r Rule) sourceMayBe(account string) bool {
	return r.SourceAccount == "" || account == "" || strings.EqualFold(r.SourceAccount, account)
}

// Resolve names each rule's destination account (accountName maps an alias, "" or
// "default" for the app's account, to its storage account name) and refuses rules that
// would copy without end: a rule accepting copy events whose copies land in its own
// source area, and rules
// that accept copy events (acceptCopyEvents) and feed each other in a cycle, each
// copy's BlobCreated starting the next rule's copy.
func Resolve(rs []Rule, accountName func(alias string) (string, bool)) error {
	for i := range rs {
		name, ok := accountName(rs[i].Destination.Account)
		if !ok {
			return fmt.Errorf("COPY_RULES (%s): destination.account %q is not a configured account", rs[i].Name, rs[i].Destination.Account)
		}
		rs[i].DestinationAccountName = name
		// Only a rule that takes its copies' events (api CopyBlob) can start itself again:
		// a mirror of any account's container into another account's is a valid rule.
		if rs[i].AcceptCopyEvents && rs[i].feedsItself() {
			return fmt.Errorf("COPY_RULES (%s): %w", rs[i].Name, errFeedsItself)
		}
	}
	if cycle := copyEventCycle(rs); cycle != nil {
		return fmt.Errorf("COPY_RULES (%s): these rules accept copy events and feed each other: each copy would start the next rule's copy without end", strings.Join(cycle, " -> "))
	}
	return nil
}

// feeds reports whether a copy made by rule a raises an event rule b takes: b accepts
// copy events and a's destination area overlaps b's source area.
func feeds(a, b Rule) bool {
	return b.AcceptCopyEvents && a.Destination.Container == b.SourceContainer &&
		b.sourceMayBe(a.DestinationAccountName) &&
		(strings.HasPrefix(a.Destination.Prefix, b.SourcePrefix) || strings.HasPrefix(b.SourcePrefix, a.Destination.Prefix))
}

// copyEventCycle returns the names along a cycle of rules feeding each other (the first
// name repeated at the end), or nil. A rule never takes its own copies (Covers), so a
// rule feeding itself is not a cycle here (feedsItself refuses the case that grows).
func copyEventCycle(rs []Rule) []string {
	const (
		unseen = iota
		open
		done
	)
	state := make([]int, len(rs))
	var path []int
	var visit func(i int) []string
	visit = func(i int) []string {
		state[i] = open
		path = append(path, i)
		for j := range rs {
			if j == i || !feeds(rs[i], rs[j]) {
				continue
			}
			switch state[j] {
			case open:
				var names []string
				for k := slices.Index(path, j); k < len(path); k++ {
					names = append(names, rs[path[k]].Name)
				}
				return append(names, rs[j].Name)
			case unseen:
				if c := visit(j); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		return nil
	}
	for i := range rs {
		if state[i] == unseen {
			if c := visit(i); c != nil {
				return c
			}
		}
	}
	return nil
}

// Covers reports whether the blob lies in the rule's source area. account is the storage
// account name; container and blob are decoded names. A blob inside the rule's own
// destination area is never covered, so a rule cannot feed itself.
func (r Rule) Covers(account, container, blob string) bool {
	if r.SourceAccount != "" && !strings.EqualFold(r.SourceAccount, account) {
		return false
	}
	if r.SourceContainer != container || !strings.HasPrefix(blob, r.SourcePrefix) {
		return false
	}
	inDestination := r.Destination.Prefix != "" && r.Destination.Container == container &&
		strings.HasPrefix(blob, r.Destination.Prefix) && r.destinationMayBe(account)
	return !inDestination
}

// DestinationBlob is the name a covered blob gets in the destination container.
func (r Rule) DestinationBlob(blob string) string {
	return r.Destination.Prefix + strings.TrimPrefix(blob, r.SourcePrefix)
}

// Match returns the first rule covering the blob.
func Match(rules []Rule, account, container, blob string) (Rule, bool) {
	for _, r := range rules {
		if r.Covers(account, container, blob) {
			return r, true
		}
	}
	return Rule{}, false
}

// ByName returns the rule with that name.
func ByName(rules []Rule, name string) (Rule, bool) {
	for _, r := range rules {
		if r.Name == name {
			return r, true
		}
	}
	return Rule{}, false
}

// badPrefix: a destination prefix no valid blob name can begin with, whatever follows.
func badPrefix(prefix string) bool {
	return config.HasDotSegment(prefix) || strings.ContainsFunc(prefix, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
