package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// TierStatus is a Strata broker's cold-tier status (GET_TIER_STATUS, a
// Strata extension; RocketMQ brokers answer REQUEST_CODE_NOT_SUPPORTED).
type TierStatus struct {
	Cluster string `json:"cluster"`
	Broker  string `json:"broker"`
	// Enabled is false when the broker runs without a cold tier.
	Enabled bool `json:"enabled"`
	Tier    *struct {
		Ready           bool      `json:"ready"`
		Objects         int       `json:"objects"`
		Bytes           int64     `json:"bytes"`
		EndOffset       int64     `json:"endOffset"`
		PendingSegments int       `json:"pendingSegments"`
		PendingBytes    int64     `json:"pendingBytes"`
		LastError       string    `json:"lastError"`
		LastErrorAt     time.Time `json:"lastErrorAt"`
		CacheHitRatio   float64   `json:"cacheHitRatio"`
	} `json:"tier"`
	// Queues holds each queue's cold range [ColdFirst, ColdNext) and hot
	// range [HotMin, HotMax).
	Queues []struct {
		Topic     string `json:"topic"`
		QueueID   int32  `json:"queueId"`
		ColdFirst int64  `json:"coldFirst"`
		ColdNext  int64  `json:"coldNext"`
		HotMin    int64  `json:"hotMin"`
		HotMax    int64  `json:"hotMax"`
	} `json:"queues"`
}

// TierStatus asks the broker at addr for its cold-tier status.
func (c *Client) TierStatus(ctx context.Context, addr string) (TierStatus, error) {
	req := remoting.NewRequest(remoting.ReqGetTierStatus, nil, nil)
	resp, err := c.brokerCall(ctx, addr, req)
	if err != nil {
		return TierStatus{}, err
	}
	if resp.Code != remoting.RespSuccess {
		return TierStatus{}, responseError(addr, req, resp)
	}
	var st TierStatus
	if err := json.Unmarshal(resp.Body, &st); err != nil {
		return TierStatus{}, fmt.Errorf("client: tier status from %s: %w", addr, err)
	}
	return st, nil
}
