package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pairgate/pairgate/server/webhook"
)

// Webhooks lists the profile's webhook endpoints and where each stands.
func (c *Client) Webhooks(ctx context.Context, profile string) ([]webhook.State, error) {
	var res struct {
		Webhooks []webhook.State `json:"webhooks"`
	}
	err := c.call(ctx, http.MethodGet, c.profile(profile, nil, "webhooks"), nil, &res)
	return res.Webhooks, err
}

// Redeliver resumes an endpoint at event from, or (from 0) at the event
// after its cursor, out of its backoff or dead letter.
func (c *Client) Redeliver(ctx context.Context, profile, id string, from int64) (webhook.State, error) {
	var query url.Values
	if from != 0 {
		query = url.Values{"from": {strconv.FormatInt(from, 10)}}
	}
	var res webhook.State
	err := c.call(ctx, http.MethodPost, c.profile(profile, query, "webhooks", id, "redeliver"), nil, &res)
	return res, err
}
