package sinks

import (
	"net"
	"net/http"
	"time"
)

// ServeLocal serves h on a free loopback port and returns its base URL
// and a func that stops it: how herald dev runs its HTTP stand-ins.
func ServeLocal(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // returns on Close
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}
