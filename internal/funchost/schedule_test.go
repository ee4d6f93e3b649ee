package funchost

import (
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	base := time.Date(2024, 5, 1, 10, 15, 7, 0, time.UTC) // a Wednesday
	tests := []struct {
		expr     string
		wantNext []time.Time // successive occurrences after base
	}{
		{"*/30 * * * * *", []time.Time{
			time.Date(2024, 5, 1, 10, 15, 30, 0, time.UTC),
			time.Date(2024, 5, 1, 10, 16, 0, 0, time.UTC),
		}},
		{"0 */5 * * * *", []time.Time{
			time.Date(2024, 5, 1, 10, 20, 0, 0, time.UTC),
			time.Date(2024, 5, 1, 10, 25, 0, 0, time.UTC),
		}},
		{"0 30 9 * * 1-5", []time.Time{
			time.Date(2024, 5, 2, 9, 30, 0, 0, time.UTC),
			time.Date(2024, 5, 3, 9, 30, 0, 0, time.UTC),
			time.Date(2024, 5, 6, 9, 30, 0, 0, time.UTC), // skips the weekend
		}},
		{"0 0 0 1 1 *", []time.Time{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"0 0 * * * Sun", []time.Time{time.Date(2024, 5, 5, 0, 0, 0, 0, time.UTC)}},
		// Five fields: {minute} {hour} {day} {month} {day-of-week}, on second 0.
		{"0 */5 * * *", []time.Time{
			time.Date(2024, 5, 1, 15, 0, 0, 0, time.UTC),
			time.Date(2024, 5, 1, 20, 0, 0, 0, time.UTC),
		}},
		{"*/5 * * * *", []time.Time{
			time.Date(2024, 5, 1, 10, 20, 0, 0, time.UTC),
			time.Date(2024, 5, 1, 10, 25, 0, 0, time.UTC),
		}},
		{"30  9 * *  1-5", []time.Time{time.Date(2024, 5, 2, 9, 30, 0, 0, time.UTC)}},
		{"@hourly", []time.Time{time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)}},
		{"00:05:00", []time.Time{base.Add(5 * time.Minute), base.Add(10 * time.Minute)}},
		{"1.00:00:00", []time.Time{base.Add(24 * time.Hour)}},
		{"00:00:00.250", []time.Time{base.Add(250 * time.Millisecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			s, err := ParseSchedule(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != tt.expr {
				t.Errorf("String() = %q", s)
			}
			at := base
			for i, want := range tt.wantNext {
				at = s.Next(at)
				if !at.Equal(want) {
					t.Fatalf("occurrence %d = %s, want %s", i, at, want)
				}
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct {
		expr, wantErr string
	}{
		{"", "empty"},
		{"* * * *", "NCRONTAB needs 6 fields"},
		{"* * * * * * *", "NCRONTAB needs 6 fields"},
		{"61 * * * *", `"61 * * * *"`},
		{"61 * * * * *", `"61 * * * * *"`},
		{"0 0 0 30 2 *", "never fires"},
		{"%COPY_STATUS_SCHEDULE%", `"%COPY_STATUS_SCHEDULE%"`},
		{"00:00:00", "positive"},
		{"00:99:00", "minutes"},
		{"@fortnightly", "@fortnightly"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := ParseSchedule(tt.expr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
