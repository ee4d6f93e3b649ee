package funchost

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed timer schedule: NCRONTAB or a constant interval.
type Schedule struct {
	expr  string
	cron  cron.Schedule
	every time.Duration
}

// ncrontab parses the host's six-field NCRONTAB. robfig/cron is well kept,
// widely used and, unlike most Go cron parsers, supports the seconds field.
// Five-field expressions, which the host accepts too, are given a "0"
// seconds field first: NCrontab's five-field form fires on second 0.
var ncrontab = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a timer schedule:
//   - NCRONTAB "{second} {minute} {hour} {day} {month} {day-of-week}",
//     e.g. "*/30 * * * * *" (descriptors like "@hourly" work too), or the
//     five-field "{minute} {hour} {day} {month} {day-of-week}", which fires on
//     second 0, e.g. "0 */5 * * *";
//   - a TimeSpan "hh:mm:ss", a constant interval, which the host allows on
//     App Service plans.
//
// Resolve %SETTING% references before parsing.
func ParseSchedule(expr string) (Schedule, error) {
	text := strings.TrimSpace(expr)
	if text == "" {
		return Schedule{}, errors.New("timer schedule is empty")
	}
	if !strings.HasPrefix(text, "@") && !strings.ContainsAny(text, " \t") && strings.Contains(text, ":") {
		d, err := parseTimeSpan(text)
		if err != nil {
			return Schedule{}, fmt.Errorf("timer schedule %q: %w", expr, err)
		}
		if d <= 0 {
			return Schedule{}, fmt.Errorf("timer schedule %q: interval must be positive", expr)
		}
		return Schedule{expr: text, every: d}, nil
	}
	parsed := text
	if !strings.HasPrefix(text, "@") {
		switch fields := strings.Fields(text); len(fields) {
		case 6:
			parsed = strings.Join(fields, " ")
		case 5:
			parsed = "0 " + strings.Join(fields, " ")
		default:
			return Schedule{}, fmt.Errorf("timer schedule %q has %d fields: NCRONTAB needs 6 fields ({second} {minute} {hour} {day} {month} {day-of-week}) or 5 (without {second})", expr, len(fields))
		}
	}
	sched, err := ncrontab.Parse(parsed)
	if err != nil {
		return Schedule{}, fmt.Errorf("timer schedule %q: %w", expr, err)
	}
	// robfig/cron answers zero time for dates that never come (30 February).
	if sched.Next(time.Now()).IsZero() {
		return Schedule{}, fmt.Errorf("timer schedule %q never fires", expr)
	}
	return Schedule{expr: text, cron: sched}, nil
}

// Next returns the first occurrence strictly after t, in t's location, or
// the zero time when there is none (including for a zero Schedule).
func (s Schedule) Next(t time.Time) time.Time {
	switch {
	case s.every > 0:
		return t.Add(s.every)
	case s.cron != nil:
		return s.cron.Next(t)
	default:
		return time.Time{}
	}
}

// String returns the schedule expression.
func (s Schedule) String() string { return s.expr }
