package jobs

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckNested(t *testing.T) {
	decode := func(s string) map[string]json.RawMessage {
		m, err := decodeObject(json.RawMessage(s))
		require.NoError(t, err)
		return m
	}
	path := []string{"joindown_OrderLine_via_Order"}
	require.NoError(t, checkNested(decode(`{"orderNo":1,"joindown_OrderLine_via_Order":{"pageInfo":{"hasNextPage":false},"items":[{},{}]}}`), path))
	require.NoError(t, checkNested(decode(`{"orderNo":1,"joindown_OrderLine_via_Order":null}`), path))
	err := checkNested(decode(`{"orderNo":1,"joindown_OrderLine_via_Order":{"pageInfo":{"hasNextPage":true},"items":[{},{},{}]}}`), path)
	require.EqualError(t, err, "nested joindown_OrderLine_via_Order truncated at 3; raise first or import orderLine as its own job")

	// A connection nested inside another's items: every element is checked.
	deep := []string{"joindown_Order_via_Customer", "items", "joindown_OrderLine_via_Order"}
	ok := `{"joindown_Order_via_Customer":{"pageInfo":{"hasNextPage":false},"items":[
		{"joindown_OrderLine_via_Order":{"pageInfo":{"hasNextPage":false},"items":[{}]}}]}}`
	require.NoError(t, checkNested(decode(ok), deep))
	bad := `{"joindown_Order_via_Customer":{"pageInfo":{"hasNextPage":false},"items":[
		{"joindown_OrderLine_via_Order":{"pageInfo":{"hasNextPage":false},"items":[{}]}},
		{"joindown_OrderLine_via_Order":{"pageInfo":{"hasNextPage":true},"items":[{},{}]}}]}}`
	require.EqualError(t, checkNested(decode(bad), deep),
		"nested joindown_Order_via_Customer.items.joindown_OrderLine_via_Order truncated at 2; raise first or import orderLine as its own job")
}
