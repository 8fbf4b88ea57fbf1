package client

import (
	"context"
	"net/http"

	"github.com/pairgate/pairgate/db"
)

// Profiles lists the profiles the client's token opens (GET /api/v1/profiles).
func (c *Client) Profiles(ctx context.Context) ([]db.ServedProfile, error) {
	var res struct {
		Profiles []db.ServedProfile `json:"profiles"`
	}
	err := c.call(ctx, http.MethodGet, c.api(nil, "profiles"), nil, &res)
	return res.Profiles, err
}

// NodeRequest is a request to pair, as a node (or its helper) sends it.
type NodeRequest struct {
	NodeID string `json:"nodeId"`
	db.NodeMeta
	Silent *bool `json:"silent,omitempty"`
}

// Request asks to pair on behalf of a node; the result says whether a
// request was created or the node's pending one returned.
func (c *Client) Request(ctx context.Context, profile string, req NodeRequest) (db.RequestResult, error) {
	var res db.RequestResult
	err := c.call(ctx, http.MethodPost, c.profile(profile, nil, "requests"), req, &res)
	return res, err
}

// PairList is OpenClaw's node.pair.list (through POST …/rpc): the
// pending requests and the paired nodes (with lastConnectedAtMs, without
// tokens), newest first, from one read of the store.
func (c *Client) PairList(ctx context.Context, profile string) (db.Listing, error) {
	var res struct {
		Payload db.Listing `json:"payload"`
	}
	body := map[string]any{"method": "node.pair.list", "params": map[string]any{}}
	err := c.call(ctx, http.MethodPost, c.profile(profile, nil, "rpc"), body, &res)
	return res.Payload, err
}

// Pending lists the pending requests, newest first.
func (c *Client) Pending(ctx context.Context, profile string) ([]db.PendingRequest, error) {
	var res struct {
		Pending []db.PendingRequest `json:"pending"`
	}
	err := c.call(ctx, http.MethodGet, c.profile(profile, nil, "pending"), nil, &res)
	return res.Pending, err
}

// RequestStatus is one request and what became of it.
func (c *Client) RequestStatus(ctx context.Context, profile, requestID string) (db.RequestStatus, error) {
	var res db.RequestStatus
	err := c.call(ctx, http.MethodGet, c.profile(profile, nil, "requests", requestID), nil, &res)
	return res, err
}

// Approve approves a pending request; the answer holds the node's new
// token, the only time it is shown.
func (c *Client) Approve(ctx context.Context, profile, requestID string) (db.Approval, error) {
	var res db.Approval
	err := c.call(ctx, http.MethodPost, c.profile(profile, nil, "requests", requestID, "approve"), nil, &res)
	return res, err
}

// Reject rejects a pending request.
func (c *Client) Reject(ctx context.Context, profile, requestID string) (db.Rejection, error) {
	var res db.Rejection
	err := c.call(ctx, http.MethodPost, c.profile(profile, nil, "requests", requestID, "reject"), nil, &res)
	return res, err
}

// Verify checks a node's token; it needs no operator token.
func (c *Client) Verify(ctx context.Context, profile, nodeID, token string) (db.Verification, error) {
	var res db.Verification
	body := map[string]string{"nodeId": nodeID, "token": token}
	err := c.call(ctx, http.MethodPost, c.profile(profile, nil, "verify"), body, &res)
	return res, err
}

// Nodes lists the paired nodes, with their live sessions.
func (c *Client) Nodes(ctx context.Context, profile string) (db.NodeList, error) {
	var res db.NodeList
	err := c.call(ctx, http.MethodGet, c.profile(profile, nil, "nodes"), nil, &res)
	return res, err
}

// Node describes one paired node.
func (c *Client) Node(ctx context.Context, profile, nodeID string) (db.NodeDescription, error) {
	var res db.NodeDescription
	err := c.call(ctx, http.MethodGet, c.profile(profile, nil, "nodes", nodeID), nil, &res)
	return res, err
}

// Rename sets a paired node's display name.
func (c *Client) Rename(ctx context.Context, profile, nodeID, displayName string) (db.Renamed, error) {
	var res db.Renamed
	body := map[string]string{"displayName": displayName}
	err := c.call(ctx, http.MethodPatch, c.profile(profile, nil, "nodes", nodeID), body, &res)
	return res, err
}

// Remove removes a pairing: the node's token stops verifying at once.
func (c *Client) Remove(ctx context.Context, profile, nodeID string) error {
	return c.call(ctx, http.MethodDelete, c.profile(profile, nil, "nodes", nodeID), nil, nil)
}
