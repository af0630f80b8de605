package tlstest

import (
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	// Readers on other goroutines, as the code under test has (run with -race).
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				c.Now()
			}
		})
	}
	for range 10 {
		c.Advance(time.Hour)
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(10*time.Hour); !got.Equal(want) {
		t.Errorf("after 10 one-hour Advances Now = %v, want %v", got, want)
	}
	c.Advance(-3 * time.Hour)
	if got, want := c.Now(), start.Add(7*time.Hour); !got.Equal(want) {
		t.Errorf("after Advance(-3h) Now = %v, want %v", got, want)
	}
	c.Set(start)
	if got := c.Now(); !got.Equal(start) {
		t.Errorf("after Set Now = %v, want %v", got, start)
	}
}
