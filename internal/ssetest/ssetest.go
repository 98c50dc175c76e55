// Package ssetest is a Server-Sent Events client for tests: it reads a
// stream's events into a channel, as a browser's EventSource would parse
// them (id, event, data lines; a blank line ends an event; comments
// skipped).
package ssetest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Event is one parsed event.
type Event struct {
	ID, Kind string
	Data     []byte
}

// Client is one open stream.
type Client struct {
	// Events delivers the stream's events; it is closed when the stream
	// ends (the server closed it, or Close).
	Events <-chan Event
	cancel context.CancelFunc
	resp   *http.Response
}

// Open opens url with the bearer token (empty: none) and, when lastID is
// set, Last-Event-ID. A status other than 200 is an error naming it.
func Open(url, token, lastID string) (*Client, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("stream: %s", resp.Status)
	}
	events := make(chan Event, 4096)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var e Event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.Kind != "" {
					events <- e
				}
				e = Event{}
			case strings.HasPrefix(line, "id: "):
				e.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.Kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.Data = []byte(line[6:])
			}
		}
	}()
	return &Client{Events: events, cancel: cancel, resp: resp}, nil
}

// Close ends the stream.
func (c *Client) Close() {
	c.cancel()
	c.resp.Body.Close()
}
