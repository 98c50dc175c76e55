package scalemodel

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// RedisStats is what INFO says about a redis-server's memory and CPU.
type RedisStats struct {
	UsedMemory int64   // used_memory: bytes the allocator handed to Redis
	CPUSeconds float64 // used_cpu_sys + used_cpu_user of the server process
}

// ReadRedisStats reads INFO memory and INFO cpu.
func ReadRedisStats(ctx context.Context, c redis.UniversalClient) (RedisStats, error) {
	var s RedisStats
	mem, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return s, err
	}
	v, ok := infoField(mem, "used_memory")
	if !ok {
		return s, fmt.Errorf("scalemodel: INFO memory has no used_memory")
	}
	if s.UsedMemory, err = strconv.ParseInt(v, 10, 64); err != nil {
		return s, err
	}
	cpu, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return s, err
	}
	for _, f := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, ok := infoField(cpu, f)
		if !ok {
			return s, fmt.Errorf("scalemodel: INFO cpu has no %s", f)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return s, err
		}
		s.CPUSeconds += x
	}
	return s, nil
}

func infoField(info, name string) (string, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v, true
		}
	}
	return "", false
}

// BytesPerKey writes n items through write (called once per i in [0, n),
// from several goroutines, as a fleet's workers would, so coalescing
// stores batch as in production) into the Redis c, and reports the growth
// of used_memory per item ("bytes/key") and the server's CPU per item
// ("redis-cpu-us/key"). Write must not touch what an earlier i wrote
// unless that is the point (for example items sharing a feed). It is run
// once per benchmark, whatever b.N: the figure is a size, not a speed.
func BytesPerKey(b *testing.B, c redis.UniversalClient, n int, write func(ctx context.Context, i int) error) (bytesPerKey, cpuMicrosPerKey float64) {
	b.Helper()
	ctx := context.Background()
	if err := c.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	before, err := ReadRedisStats(ctx, c)
	if err != nil {
		b.Fatal(err)
	}
	Each(b, n, write)
	after, err := ReadRedisStats(ctx, c)
	if err != nil {
		b.Fatal(err)
	}
	bytesPerKey = float64(after.UsedMemory-before.UsedMemory) / float64(n)
	cpuMicrosPerKey = (after.CPUSeconds - before.CPUSeconds) * 1e6 / float64(n)
	b.ReportMetric(bytesPerKey, "bytes/key")
	b.ReportMetric(cpuMicrosPerKey, "redis-cpu-us/key")
	return bytesPerKey, cpuMicrosPerKey
}

// NotificationID returns a realistic notification id for i: "ntf_" and 32
// hex digits, as notification.ID makes them (docs/contracts.md §3).
func NotificationID(i int) string {
	x := uint64(i) + 1
	return fmt.Sprintf("ntf_%016x%016x", x*0x9e3779b97f4a7c15, (x^0x5bd1e995)*0xc2b2ae3d27d4eb4f)
}

// Each calls f for every i in [0, n) from 16 goroutines per core, as a
// fleet's workers would, so coalescing stores batch as in production. It
// fails b on the first error.
func Each(b *testing.B, n int, f func(ctx context.Context, i int) error) {
	b.Helper()
	ctx := context.Background()
	workers := 16 * runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := f(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}
