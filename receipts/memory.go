package receipts

import (
	"context"
	"sync"
	"time"
)

// Memory is a Store in process memory, for herald dev and tests. Entries
// never expire. The zero value is not usable; call NewMemory.
type Memory struct {
	mu     sync.Mutex
	byPMID map[string]Receipt
	byNID  map[string]string // notification id → latest provider message id
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{byPMID: map[string]Receipt{}, byNID: map[string]string{}}
}

// Accepted implements Store.
func (m *Memory) Accepted(_ context.Context, r Receipt) (Receipt, error) {
	if r.NotificationID == "" || r.ProviderMessageID == "" {
		return Receipt{}, invalid("accepted needs a notification id and a provider message id")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.byPMID[r.ProviderMessageID]
	if !ok || cur.Status.Rank() <= StatusAccepted.Rank() {
		cur.Status, cur.Code, cur.At = StatusAccepted, "", r.At
	}
	cur.NotificationID, cur.Channel, cur.Provider, cur.ProviderMessageID = r.NotificationID, r.Channel, r.Provider, r.ProviderMessageID
	m.byPMID[r.ProviderMessageID] = cur
	m.byNID[r.NotificationID] = r.ProviderMessageID
	return describe(cur), nil
}

// Record implements Store.
func (m *Memory) Record(_ context.Context, providerMessageID string, status Status, code string, at time.Time) (Receipt, bool, error) {
	if providerMessageID == "" || !status.Valid() {
		return Receipt{}, false, invalid("record needs a provider message id and a known status (got %q)", status)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.byPMID[providerMessageID]
	if ok && status.Rank() <= cur.Status.Rank() {
		return describe(cur), false, nil
	}
	cur.ProviderMessageID, cur.Status, cur.Code, cur.At = providerMessageID, status, code, at
	m.byPMID[providerMessageID] = cur
	return describe(cur), true, nil
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, notificationID string) (Receipt, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pmid, ok := m.byNID[notificationID]
	if !ok {
		return Receipt{}, false, nil
	}
	r, ok := m.byPMID[pmid]
	return describe(r), ok, nil
}

// Lookup implements Store.
func (m *Memory) Lookup(_ context.Context, providerMessageID string) (Receipt, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.byPMID[providerMessageID]
	return describe(r), ok, nil
}
