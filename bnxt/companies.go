package bnxt

import (
	"context"
	"encoding/json"
	"fmt"

	"go.uber.org/zap"
)

// Company is one entry of availableCompanies.
type Company struct {
	Name               string `json:"name"`
	VismaNetCompanyID  int64  `json:"vismaNetCompanyId"`
	VismaNetCustomerID int64  `json:"vismaNetCustomerId"`
}

// companiesQuery lists the companies the token may use. availableCompanies
// is not paged (it has no pageInfo).
const companiesQuery = `query nxtcronAvailableCompanies {
  availableCompanies {
    totalCount
    items { name vismaNetCompanyId vismaNetCustomerId }
  }
}`

// Companies returns the companies the connection's token may use
// (availableCompanies).
func (c *Client) Companies(ctx context.Context) ([]Company, error) {
	resp, err := c.Do(ctx, Request{Query: companiesQuery, OperationName: "nxtcronAvailableCompanies"})
	if err != nil {
		return nil, err
	}
	var out struct {
		AvailableCompanies *struct {
			TotalCount *int64    `json:"totalCount"`
			Items      []Company `json:"items"`
		} `json:"availableCompanies"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return nil, fmt.Errorf("decoding availableCompanies (connection %q, trace_id %s): %w", c.conn, resp.TraceID, err)
	}
	if out.AvailableCompanies == nil {
		return nil, fmt.Errorf("availableCompanies is null (connection %q, trace_id %s)", c.conn, resp.TraceID)
	}
	list := out.AvailableCompanies
	if list.TotalCount != nil && *list.TotalCount != int64(len(list.Items)) {
		c.log.Warn("availableCompanies lists fewer companies than its totalCount",
			zap.String("trace_id", resp.TraceID), zap.Int64("total_count", *list.TotalCount), zap.Int("items", len(list.Items)))
	}
	if list.Items == nil {
		return []Company{}, nil
	}
	return list.Items, nil
}
