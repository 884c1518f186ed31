package jobs

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestItemFieldNamesResolvesAliasesAndFragments(t *testing.T) {
	const q = `query($cid: Int, $first: Int, $after: String) {
  company: useCompany(no: $cid) {
    rows: order(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      items { no: orderNo ...Amounts ... on Order { orderDate } no: orderNo }
    }
  }
}
fragment Amounts on Order { total: totalAmount exchangeRate }`
	a := analyseQuery(q, queryOptions{})
	require.Empty(t, a.Problems)
	job := &Job{Query: q, Paged: a.Paged}
	require.Equal(t, []string{"no", "total", "exchangeRate", "orderDate"}, job.Paged.Fields)
	require.Equal(t, map[string]string{"no": "orderNo", "total": "totalAmount", "exchangeRate": "exchangeRate", "orderDate": "orderDate"},
		itemFieldNames(job))

	require.Nil(t, itemFieldNames(&Job{Query: "{", Paged: a.Paged}), "an unparsable query resolves nothing")
	require.Nil(t, itemFieldNames(&Job{Query: q, Paged: PagedConnection{Path: []string{"company", "missing"}}}))
}

func TestUnwrapType(t *testing.T) {
	tests := []struct {
		json         string
		name         string
		list, object bool
	}{
		{`{"kind":"SCALAR","name":"Int"}`, "Int", false, false},
		{`{"kind":"NON_NULL","name":null,"ofType":{"kind":"SCALAR","name":"DateTime"}}`, "DateTime", false, false},
		{`{"kind":"OBJECT","name":"Country"}`, "Country", false, true},
		{`{"kind":"LIST","name":null,"ofType":{"kind":"NON_NULL","name":null,"ofType":{"kind":"SCALAR","name":"String"}}}`, "String", true, false},
		{`{"kind":"NON_NULL","name":null,"ofType":{"kind":"LIST","name":null,"ofType":{"kind":"OBJECT","name":"OrderLine"}}}`, "OrderLine", true, true},
		{`{"kind":"ENUM","name":"SortOrder"}`, "SortOrder", false, false},
	}
	for _, tt := range tests {
		var it introType
		require.NoError(t, json.Unmarshal([]byte(tt.json), &it))
		name, list, object := unwrapType(it)
		require.Equal(t, tt.name, name, tt.json)
		require.Equal(t, tt.list, list, tt.json)
		require.Equal(t, tt.object, object, tt.json)
	}
}
