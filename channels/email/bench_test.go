package email_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gymhq/herald/sinks/smtpsink"
)

// BenchmarkSend measures messages through the pooled Sender against the
// in-process sink over STARTTLS, next to a baseline measured in the same run:
// go-mail dialling a fresh connection per message, which is what sending
// without a pool costs. Each pooled case reports "x_baseline", its throughput
// as a multiple of the baseline's, and "conns", the connections it opened.
func BenchmarkSend(b *testing.B) {
	f := startSink(b, smtpsink.Options{}, false)
	var seq atomic.Int64
	nextID := func() string { return "ntf_bench" + strconv.FormatInt(seq.Add(1), 10) }

	var baseline float64 // ns per message
	b.Run("baseline=dial-per-message", func(b *testing.B) {
		host, portText, _ := net.SplitHostPort(f.sink.Addr())
		port, _ := strconv.Atoi(portText)
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c, err := gomail.NewClient(host, gomail.WithPort(port), gomail.WithTimeout(10*time.Second),
					gomail.WithTLSConfig(&tls.Config{RootCAs: f.roots, ServerName: host}))
				if err != nil {
					b.Error(err)
					return
				}
				m := message(nextID())
				msg := gomail.NewMsg()
				_ = msg.From(from)
				_ = msg.AddToFormat(m.ToName, m.To)
				msg.Subject(m.Subject)
				msg.SetBodyString(gomail.TypeTextPlain, m.Text)
				msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
				if err := c.DialAndSendWithContext(context.Background(), msg); err != nil {
					b.Error(err)
					return
				}
			}
		})
		baseline = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})

	for _, size := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("pool=%d", size), func(b *testing.B) {
			dialled := f.sink.Connections()
			cfg := f.config()
			cfg.PoolSize = size
			s := newSender(b, cfg)
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Send(context.Background(), message(nextID())); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(f.sink.Connections()-dialled), "conns")
			if own := float64(b.Elapsed().Nanoseconds()) / float64(b.N); baseline > 0 && own > 0 {
				b.ReportMetric(baseline/own, "x_baseline")
			}
		})
	}
}
