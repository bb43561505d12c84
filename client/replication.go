package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/strata-mq/strata/remoting"
)

// ReplicationStatus is a Strata broker's replication state
// (GET_REPLICATION_STATUS, a Strata extension).
type ReplicationStatus struct {
	BrokerName  string `json:"brokerName"`
	BrokerID    int64  `json:"brokerId"`
	Role        string `json:"role"`
	Addr        string `json:"addr"`
	HAAddr      string `json:"haAddr"`
	Replication string `json:"replication"`
	MinInSync   int    `json:"minInSyncReplicas"`
	InSync      int    `json:"inSyncReplicas"`
	Epoch       int64  `json:"epoch"`
	LogStart    int64  `json:"logStart"`
	LogEnd      int64  `json:"logEnd"`
	// Followers are a leader's connected followers.
	Followers []struct {
		ID        int64     `json:"brokerId"`
		Addr      string    `json:"addr"`
		Acked     int64     `json:"ackedOffset"`
		LagBytes  int64     `json:"lagBytes"`
		LagMillis int64     `json:"lagMillis"`
		InSync    bool      `json:"inSync"`
		Since     time.Time `json:"connectedSince"`
	} `json:"followers"`
	// Replica is a follower's view of its copy.
	Replica *struct {
		Leader    string `json:"leader"`
		Connected bool   `json:"connected"`
		LogEnd    int64  `json:"logEnd"`
		LeaderEnd int64  `json:"leaderEnd"`
		LagBytes  int64  `json:"lagBytes"`
		LagMillis int64  `json:"lagMillis"`
		LastError string `json:"lastError"`
	} `json:"replica"`
}

// ReplicationStatus asks the broker at addr for its replication state.
func (c *Client) ReplicationStatus(ctx context.Context, addr string) (ReplicationStatus, error) {
	req := remoting.NewRequest(remoting.ReqGetReplicationStatus, nil, nil)
	resp, err := c.brokerCall(ctx, addr, req)
	if err != nil {
		return ReplicationStatus{}, err
	}
	if resp.Code != remoting.RespSuccess {
		return ReplicationStatus{}, responseError(addr, req, resp)
	}
	var st ReplicationStatus
	if err := json.Unmarshal(resp.Body, &st); err != nil {
		return ReplicationStatus{}, fmt.Errorf("client: replication status from %s: %w", addr, err)
	}
	return st, nil
}
